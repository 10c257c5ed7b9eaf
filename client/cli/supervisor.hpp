// COMMAND runs under a small supervising process forked by singleton-lock:
//
//   singleton-lock ──socketpair── supervisor ── COMMAND (leads its own process group)
//   (subreaper)                   (subreaper)      └─ its children, daemons that left the group
//
// Strict process exclusion, by construction:
// - The supervisor is a child subreaper: whatever COMMAND starts (children,
//   setsid daemons, double forks) stays its descendant until reaped.
// - At leadership singleton-lock hands it duplicates of the database sockets
//   (SCM_RIGHTS). The server sees the lease's sessions end only when every copy
//   is closed, and the supervisor closes its copies only after it has killed
//   (SIGKILL) and reaped COMMAND's group and every remaining descendant.
// - If singleton-lock dies (even SIGKILL), the supervisor sees EOF on the link
//   and does exactly that: the lease can pass on only after everything is gone.
// - Every other end (COMMAND exits, SIGTERM, lease lost, watchdog) is reported
//   over the link only after the same kill-and-reap; singleton-lock releases
//   the lease only after that report.
// - singleton-lock is a subreaper too: if the supervisor itself dies, what it
//   leaves is adopted by singleton-lock, which kills and reaps it all.
//
// It is forked early, while singleton-lock is still a standby (prepare()). On
// leadership start() sends the token, the watchdog's deadline and the sockets;
// the supervisor vforks the child that execs COMMAND with SINGLETON_LOCK_TOKEN
// set. (vfork copies no page tables, and its child's execve has none of this
// process's mappings to tear down: on a 2-core VM that was faster than waking
// a child forked in advance, which had to.)
//
// Watchdog: singleton-lock sends the latest deadline after every confirmed
// heartbeat; if it passes (singleton-lock hangs), the supervisor SIGTERMs the
// group itself and SIGKILLs everything at the end of the grace.
//
// Warm (--warm): the child execs COMMAND at once, while singleton-lock is a
// standby, with the read end of a pipe as SINGLETON_LOCK_LEADER_FD; start()
// writes "leader TOKEN\n" into it (after handing over the sockets, as above)
// and closes it. Before start, stop() stops that COMMAND and its end is
// reported like any other (on_readable() -> ended).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "supervisor_link.hpp"

namespace singleton_lock::cli {

struct CommandReport {
    int status = 0;                // COMMAND's wait status
    int leftovers = 0;             // other processes of its tree killed and reaped after it
    bool grace_ran_out = false;    // still running at the end of the grace: SIGKILLed
    bool watchdog_fired = false;   // the supervisor acted on its own deadline
    bool supervisor_lost = false;  // the supervisor died without a report
    int exec_errno = 0;            // COMMAND's execve failed (its status is then 126 or 127)
};

class Supervisor {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;
    enum class Event { none, helper_lost, ended };

    Supervisor() = default;
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // Forks the supervising process (and its waiting COMMAND child) now; COMMAND
    // runs only after start(), or at once when warm. env: COMMAND's environment
    // without SINGLETON_LOCK_TOKEN (start() supplies it; a warm COMMAND gets
    // SINGLETON_LOCK_LEADER_FD instead). Throws std::system_error, or
    // std::runtime_error when it did not come up.
    void prepare(const std::string& path, const std::vector<std::string>& argv,
                 const std::vector<std::string>& env, std::chrono::nanoseconds grace,
                 bool warm = false);
    // Runs the prepared COMMAND with SINGLETON_LOCK_TOKEN=token, handing over the
    // database sockets. False when the supervising process is gone (discard()
    // and prepare() again).
    bool start(std::int64_t token, TimePoint watchdog_deadline, const std::vector<int>& sockets);
    // Kills and reaps a prepared supervisor whose COMMAND never started.
    void discard();
    void extend(TimePoint watchdog_deadline);  // no-op when unchanged or not running
    // Sends sig to COMMAND's group now; at the end of the grace, SIGKILL to
    // whatever of it is left. Repeated calls forward the signal again.
    void stop(int sig);
    // Sends sig to COMMAND's group (a running or warm one), nothing more: the
    // signals singleton-lock passes on (SIGHUP, SIGUSR1, ...).
    void pass_on(int sig);
    // The supervisor does not report in time: SIGKILL it. What it leaves is
    // adopted by this process; on_readable() then kills and reaps it.
    void kill_supervisor();

    bool prepared() const { return pid_ > 0 && !started_; }  // waiting for start()
    bool warm() const { return warm_; }
    bool running() const { return started_ && !report_; }
    pid_t command_pid() const { return command_pid_; }  // COMMAND's pid = its group; 0 if unknown
    int fd() const { return running() || prepared() ? link_ : -1; }
    // Call when fd() is readable. ended: report() says how COMMAND ended; it and
    // every descendant are gone (a warm COMMAND too, before start()).
    // helper_lost: the prepared supervisor died (never when warm).
    Event on_readable();
    const std::optional<CommandReport>& report() const { return report_; }

  private:
    void close_gate(const std::int64_t* token);
    void collect_remains();
    void forget_process();  // closes the link; pid_ no longer names it
    void reap_orphans();
    void reap_exited();
    CommandReport read_report(int received, const link::Message& m) const;
    pid_t pid_ = -1;  // the supervising process
    pid_t command_pid_ = 0;
    int exec_errno_ = 0;  // what the child's execve failed with (0: it did not fail)
    int link_ = -1;
    int gate_ = -1;  // --warm: write end of COMMAND's SINGLETON_LOCK_LEADER_FD, until start()
    pid_t exiting_pid_ = -1;  // a supervising process that reported: reaped before the next fork
    bool started_ = false;
    bool warm_ = false;
    std::optional<CommandReport> report_;
    TimePoint sent_deadline_{};
};

// Shell convention: exit code, or 128+N for death by signal N.
int exit_code_of(int wait_status);

}  // namespace singleton_lock::cli
