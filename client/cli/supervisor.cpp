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
#include <stdexcept>
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

constexpr std::size_t token_digits = 20;  // room for any int64

// The COMMAND child: SINGLETON_LOCK_TOKEN goes into its own copy of the
// environment (token_slot points into it), then exec.
[[noreturn]] void exec_command(const char* path, char* const* argv, char* const* envp,
                               char* token_slot, std::int64_t token) {
    char digits[token_digits];
    std::size_t n = 0;
    std::uint64_t v = token < 0 ? 0 : static_cast<std::uint64_t>(token);
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0 && n < token_digits);
    for (std::size_t i = 0; i < n; ++i) token_slot[i] = digits[n - 1 - i];
    token_slot[n] = '\0';
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::execve(path, argv, envp);
    ::_exit(errno == ENOENT ? 127 : 126);
}

// Closes every descriptor >= 3 but the three given ones.
void close_all_but(int a, int b, int c) {
    int keep[3] = {a, b, c};
    for (int i = 1; i < 3; ++i)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; --j) {
            const int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    unsigned from = 3;
    for (int k : keep) {
        if (k < 3 || static_cast<unsigned>(k) < from) continue;
        if (static_cast<unsigned>(k) > from) ::close_range(from, static_cast<unsigned>(k) - 1, 0);
        from = static_cast<unsigned>(k) + 1;
    }
    ::close_range(from, ~0U, 0);
}

// gate: a socketpair; singleton-lock keeps its write end and writes the token into
// it right after it sent "start" on the link, so the COMMAND child is woken
// directly (one process switch on the way to COMMAND, not two). The link
// message is therefore always queued before COMMAND can run: a child that dies
// with no "start" sent or queued never ran COMMAND, and only then is a new one
// forked at start.
[[noreturn]] void supervise(int link, int gate_r, int gate_w, const char* path, char* const* argv,
                            char* const* envp, char* token_slot, std::int64_t grace_ns) {
    ::setpgid(0, 0);
    // Keep only stdio, the link and the gate: the database socket must not outlive singleton-lock.
    close_all_but(link, gate_r, gate_w);

    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    const int sfd = ::signalfd(-1, &set, SFD_CLOEXEC);

    // The COMMAND child is forked now and waits on the gate for the token; EOF on
    // the gate (singleton-lock gone, or it gave up) makes it exit without running COMMAND.
    pid_t child = -1;  // -1 while standby: none waits (start forks one)
    if (gate_r >= 0) {
        child = ::fork();
        if (child == 0) {
            ::close(gate_w);
            ::close(link);
            if (sfd >= 0) ::close(sfd);
            std::int64_t token = 0;
            ssize_t n;
            do {
                n = ::read(gate_r, &token, sizeof token);
            } while (n < 0 && errno == EINTR);
            if (n != static_cast<ssize_t>(sizeof token)) ::_exit(0);
            ::close(gate_r);
            exec_command(path, argv, envp, token_slot, token);
        }
        ::close(gate_r);
    }
    if (gate_w >= 0) ::close(gate_w);
    if (sfd < 0) {
        if (child > 0) ::kill(child, SIGKILL);
        ::_exit(1);  // singleton-lock sees EOF: start() fails or collect() reports SIGKILL
    }

    bool started = false;  // the token arrived: COMMAND runs
    std::int64_t deadline_ns = INT64_MAX;
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
            std::int64_t msg[2] = {0, 0};
            const ssize_t n = ::read(link, msg, sizeof msg);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                ::kill(0, SIGKILL);  // singleton-lock is gone: take the group down
                ::_exit(1);
            }
            if (!started && n == static_cast<ssize_t>(sizeof msg)) {  // start: token, deadline
                started = true;
                deadline_ns = msg[1];
                if (child < 0) {  // no child waits (it died, or none could be forked): fork now
                    child = ::fork();
                    if (child == 0) exec_command(path, argv, envp, token_slot, msg[0]);
                    if (child < 0) {
                        const int st = 126 << 8;  // as if exited 126
                        (void)!::write(link, &st, sizeof st);
                        ::kill(0, SIGKILL);
                        ::_exit(1);
                    }
                }  // else singleton-lock has written the token into the child's gate
            } else if (started && n == static_cast<ssize_t>(sizeof msg[0]) && !terminated) {
                deadline_ns = msg[0];
            }
        }
        if (fds[1].revents != 0) {
            signalfd_siginfo si;
            (void)!::read(sfd, &si, sizeof si);  // forwarded TERM/INT are meant for COMMAND; ignore
            int st = 0;
            pid_t w;
            while ((w = ::waitpid(-1, &st, WNOHANG)) > 0) {
                if (w != child) continue;
                std::int64_t peek[2];
                if (!started && ::recv(link, peek, sizeof peek, MSG_PEEK | MSG_DONTWAIT) !=
                                    static_cast<ssize_t>(sizeof peek)) {
                    child = -1;  // died while waiting, before any token: start forks a new one
                    continue;
                }
                (void)!::write(link, &st, sizeof st);
                ::kill(0, SIGKILL);  // COMMAND's leftovers must not run without the lease
                ::_exit(0);
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

void Supervisor::prepare(const std::string& path, const std::vector<std::string>& argv,
                         const std::vector<std::string>& env, std::chrono::nanoseconds grace) {
    if (pid_ > 0) throw std::logic_error("Supervisor::prepare: already prepared");
    const std::int64_t grace_ns = grace.count();
    // Everything the children need is prepared before fork; the token's digits
    // are written into the children's copy of token_var.
    std::string token_var = "SINGLETON_LOCK_TOKEN=" + std::string(token_digits, '0');
    std::vector<char*> cargv, cenv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(token_var.data());
    cenv.push_back(nullptr);
    char* const token_slot = token_var.data() + (token_var.size() - token_digits);

    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        throw std::system_error(errno, std::generic_category(), "socketpair");
    int gate[2] = {-1, -1};  // without it the supervisor forks COMMAND's child at start
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, gate) != 0) gate[0] = gate[1] = -1;
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        for (int fd : {sv[0], sv[1], gate[0], gate[1]})
            if (fd >= 0) ::close(fd);
        throw std::system_error(e, std::generic_category(), "fork");
    }
    if (pid == 0)
        supervise(sv[1], gate[0], gate[1], path.c_str(), cargv.data(), cenv.data(), token_slot,
                  grace_ns);
    ::close(sv[1]);
    if (gate[0] >= 0) ::close(gate[0]);
    ::setpgid(pid, pid);  // also done by the child; whoever runs first wins
    pid_ = pid;
    link_ = sv[0];
    gate_ = gate[1];
    started_ = false;
    status_.reset();
}

bool Supervisor::start(std::int64_t token, std::chrono::steady_clock::time_point deadline) {
    if (!prepared()) return false;
    const std::int64_t msg[2] = {token, to_ns(deadline)};
    if (::send(link_, msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL) !=
        static_cast<ssize_t>(sizeof msg))
        return false;
    started_ = true;
    sent_deadline_ = deadline;
    // "start" is queued on the link now (see supervise(): a child that dies from
    // here on counts as COMMAND), so COMMAND's child may go: wake it directly.
    close_gate(&token);
    return true;
}

void Supervisor::close_gate(const std::int64_t* token) {
    if (gate_ < 0) return;
    if (token) (void)!::send(gate_, token, sizeof *token, MSG_DONTWAIT | MSG_NOSIGNAL);
    ::close(gate_);
    gate_ = -1;
}

void Supervisor::discard() {
    if (!prepared()) return;
    ::kill(-pid_, SIGKILL);  // the supervisor and its waiting child (never COMMAND)
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    ::close(link_);
    link_ = -1;
    close_gate(nullptr);
    pid_ = -1;
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
    discard();
    if (running()) {
        ::kill(-pid_, SIGKILL);
        (void)collect();
    }
    if (link_ >= 0) ::close(link_);
    close_gate(nullptr);
}

}  // namespace singleton_lock::cli
