// singleton-lock run: checks COMMAND, takes the signals, and hands over to the
// Runner (runner.hpp), one thread polling signals, the elector's sessions and
// COMMAND's supervisor; the health endpoint has its own threads.
#include <signal.h>
#include <sys/signalfd.h>

#include <cerrno>
#include <cstring>

#include "command.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "log.hpp"
#include "open_files.hpp"
#include "reaper.hpp"
#include "runner.hpp"

namespace singleton_lock::cli {

namespace {

// SIGTERM and SIGINT (stop), and the signals passed on to COMMAND, are read
// from a signalfd; they are blocked before any thread starts, so that none of
// them takes one. (Left at their default, SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT
// would kill singleton-lock: COMMAND SIGKILLed with no grace, for an
// operator's `kill -HUP` to reload it. SIGTSTP, SIGTTIN and SIGTTOU (Ctrl-Z, a
// background job's terminal I/O) would stop it: COMMAND ran on, unwatched, and
// the lease ran out under it; they are logged and ignored.)
int open_signalfd() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU})
        sigaddset(&set, sig);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int run_to_the_end(const RunArgs& args) {
    // Checked before the lease is taken: a COMMAND that cannot run never leads.
    const ResolvedCommand command = resolve_command(args.command.front());
    if (command.failure != 0) {
        log(command.error);
        return command.failure;
    }
    // Checked before the lease is taken too: with too few descriptors every
    // connection attempt fails alike, and waiting would never end.
    const std::string no_room = open_files::make_room(
        open_files::needed_without_health + (args.health ? open_files::needed_for_health : 0));
    if (!no_room.empty()) {
        log(no_room);
        return exit_code::error;
    }
    const int sfd = open_signalfd();
    if (sfd < 0) {
        log(std::string("signalfd: ") + std::strerror(errno));
        return exit_code::error;
    }
    // What COMMAND's supervisor leaves when it dies is adopted here, not by init.
    if (!reaper::become_subreaper()) log("warning: cannot become a child subreaper");
    try {
        Runner runner(args, command.path, sfd);
        return runner.run();
    } catch (const UsageError& e) {
        log(e.what());
        return exit_code::usage;
    } catch (const std::exception& e) {
        log(e.what());
        return exit_code::error;
    }
}

}  // namespace

int run_command(const RunArgs& args) {
    const int code = run_to_the_end(args);
    drain_log(std::chrono::seconds(1));  // the last lines, should stderr have stalled
    return code;
}

}  // namespace singleton_lock::cli
