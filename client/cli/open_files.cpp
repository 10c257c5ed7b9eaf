#include "open_files.hpp"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>

namespace singleton_lock::cli::open_files {

namespace {
rlimit found{};      // the limits as singleton-lock started with them
bool raised = false;  // make_room changed the soft limit

std::string text(rlim_t v) { return v == RLIM_INFINITY ? "unlimited" : std::to_string(v); }
}  // namespace

std::string make_room(unsigned need) {
    if (::getrlimit(RLIMIT_NOFILE, &found) != 0)
        return std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno);
    if (found.rlim_cur >= need) return "";
    const std::string why = "the limit on open files is " + text(found.rlim_cur) +
                            " (ulimit -n; hard limit " + text(found.rlim_max) +
                            "): singleton-lock run needs " + std::to_string(need) +
                            " here; raise it (ulimit -n, "
                            "LimitNOFILE= in a systemd unit, --ulimit nofile= for a "
                            "container)";
    if (found.rlim_max < need) return why;
    rlimit more = found;
    more.rlim_cur = need;
    if (::setrlimit(RLIMIT_NOFILE, &more) != 0)
        return why + ": setrlimit: " + std::strerror(errno);
    raised = true;
    return "";
}

void restore_for_command() {
    if (raised) (void)::setrlimit(RLIMIT_NOFILE, &found);
}

}  // namespace singleton_lock::cli::open_files
