// singleton-lock: run | status | release --force | pause | resume
#include <cstdio>

#include "args.hpp"
#include "commands.hpp"

int main(int argc, char** argv) {
    using namespace singleton_lock::cli;
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
