#include "supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <ctime>
#include <climits>
#include <cstdlib>
#include <system_error>

namespace singleton_lock::cli {

namespace {

bool executable_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

// Everything below runs in the forked supervisor: async-signal-safe calls only
// (the parent may have other threads, e.g. the health endpoint).
std::int64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock of std::chrono::steady_clock
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::int64_t to_ns(std::chrono::steady_clock::time_point t) {
    if (t == std::chrono::steady_clock::time_point::max()) return INT64_MAX;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

[[noreturn]] void supervise(int link, const char* path, char* const* argv, char* const* envp,
                            std::int64_t deadline_ns, std::int64_t grace_ns) {
    ::setpgid(0, 0);
    // Keep only stdio and the link: the database socket must not outlive singleton-lock.
    ::close_range(3, static_cast<unsigned>(link) - 1, 0);
    ::close_range(static_cast<unsigned>(link) + 1, ~0U, 0);

    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    const int sfd = ::signalfd(-1, &set, SFD_CLOEXEC);

    const pid_t child = ::fork();
    if (child == 0) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGPIPE, SIG_DFL);
        ::execve(path, argv, envp);
        ::_exit(errno == ENOENT ? 127 : 126);
    }
    if (child < 0 || sfd < 0) {
        const int st = 126 << 8;  // as if exited 126
        (void)!::write(link, &st, sizeof st);
        ::_exit(1);
    }
    bool terminated = false;
    std::int64_t kill_ns = INT64_MAX;
    for (;;) {
        const std::int64_t now = monotonic_ns();
        if (!terminated && now >= deadline_ns) {  // singleton-lock missed its own deadline
            ::kill(0, SIGTERM);                   // (our SIGTERM is blocked: read, ignored)
            terminated = true;
            kill_ns = grace_ns > INT64_MAX - now ? INT64_MAX : now + grace_ns;
        }
        if (terminated && now >= kill_ns) ::kill(0, SIGKILL);
        const std::int64_t next = terminated ? kill_ns : deadline_ns;
        int timeout = -1;
        if (next != INT64_MAX) {
            const std::int64_t ms = (next - now + 999999) / 1000000;
            timeout = ms > INT_MAX ? INT_MAX : static_cast<int>(ms < 0 ? 0 : ms);
        }
        pollfd fds[2] = {{link, POLLIN, 0}, {sfd, POLLIN, 0}};
        if (::poll(fds, 2, timeout) < 0) continue;
        if (fds[0].revents != 0) {
            std::int64_t v = 0;
            const ssize_t n = ::read(link, &v, sizeof v);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                ::kill(0, SIGKILL);  // singleton-lock is gone: take the group down
                ::_exit(1);
            }
            if (n == static_cast<ssize_t>(sizeof v) && !terminated) deadline_ns = v;
        }
        if (fds[1].revents != 0) {
            signalfd_siginfo si;
            (void)!::read(sfd, &si, sizeof si);  // forwarded TERM/INT are meant for COMMAND; ignore
            int st = 0;
            pid_t w;
            while ((w = ::waitpid(-1, &st, WNOHANG)) > 0) {
                if (w == child) {
                    (void)!::write(link, &st, sizeof st);
                    ::kill(0, SIGKILL);  // COMMAND's leftovers must not run without the lease
                    ::_exit(0);
                }
            }
        }
    }
}

}  // namespace

int exit_code_of(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    return 1;
}

std::optional<std::string> Supervisor::resolve(const std::string& command) {
    if (command.empty()) return std::nullopt;
    if (command.find('/') != std::string::npos) return command;
    const char* env = std::getenv("PATH");
    const std::string path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= path.size()) {
        const auto end = path.find(':', start);
        std::string dir =
            path.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (dir.empty()) dir = ".";
        const std::string candidate = dir + "/" + command;
        if (executable_file(candidate)) return candidate;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return std::nullopt;
}

void Supervisor::spawn(const std::string& path, const std::vector<std::string>& argv,
                       const std::vector<std::string>& env, Watchdog watchdog) {
    const std::int64_t deadline_ns = to_ns(watchdog.deadline);
    const std::int64_t grace_ns = watchdog.grace.count();
    sent_deadline_ = watchdog.deadline;
    // Everything the child needs is prepared before fork.
    std::vector<char*> cargv, cenv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);

    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        throw std::system_error(errno, std::generic_category(), "socketpair");
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        ::close(sv[0]);
        ::close(sv[1]);
        throw std::system_error(e, std::generic_category(), "fork");
    }
    if (pid == 0) supervise(sv[1], path.c_str(), cargv.data(), cenv.data(), deadline_ns, grace_ns);
    ::close(sv[1]);
    ::setpgid(pid, pid);  // also done by the child; whoever runs first wins
    pid_ = pid;
    link_ = sv[0];
}

void Supervisor::extend(std::chrono::steady_clock::time_point deadline) {
    if (!running() || deadline == sent_deadline_) return;
    const std::int64_t v = to_ns(deadline);
    if (::send(link_, &v, sizeof v, MSG_DONTWAIT | MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof v))
        sent_deadline_ = deadline;
}

void Supervisor::signal_group(int sig) const {
    if (running()) ::kill(-pid_, sig);
}

int Supervisor::collect() {
    if (status_) return *status_;
    int st = 0;
    ssize_t n;
    do {
        n = ::read(link_, &st, sizeof st);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof st)) {
        // The supervisor died without a report (killed with the group at the end
        // of the grace, or by someone else): make sure nothing of the group survives.
        ::kill(-pid_, SIGKILL);
        st = SIGKILL;  // "killed by signal 9"
    }
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    ::close(link_);
    link_ = -1;
    status_ = st;
    return st;
}

Supervisor::~Supervisor() {
    if (running()) {
        ::kill(-pid_, SIGKILL);
        (void)collect();
    }
    if (link_ >= 0) ::close(link_);
}

}  // namespace singleton_lock::cli
