// singleton-lock: run | status | release --force | pause | resume
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "args.hpp"
#include "commands.hpp"

namespace {

// Started with stdin, stdout or stderr closed (a careless init script, `2>&-`),
// the next descriptor opened would take its number: log lines written into
// the supervising process's link or a database connection. /dev/null takes
// each closed one first (COMMAND inherits it, as under systemd).
void keep_standard_fds_open() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
        const int null = ::open("/dev/null", O_RDWR);  // the lowest free number: fd
        if (null != fd && null >= 0) ::close(null);  // (cannot happen; never keep a stray)
    }
}

}  // namespace

int main(int argc, char** argv) {
    using namespace singleton_lock::cli;
    keep_standard_fds_open();
    const Parsed p = parse_args(argc, argv);
    switch (p.kind) {
        case Parsed::Kind::run:
            return run_command(p.run);
        case Parsed::Kind::status:
            return status_command(p.status);
        case Parsed::Kind::release:
            return release_command(p.release);
        case Parsed::Kind::pause:
            return pause_command(p.pause);
        case Parsed::Kind::resume:
            return resume_command(p.pause);
        case Parsed::Kind::exit:
            break;
    }
    std::fputs(p.out.c_str(), stdout);
    std::fputs(p.err.c_str(), stderr);
    return p.exit_code;
}
