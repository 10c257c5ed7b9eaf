#include "supervise.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <initializer_list>

#include "open_files.hpp"
#include "reaper.hpp"
#include "supervisor_link.hpp"

namespace singleton_lock::cli {

namespace {

std::int64_t monotonic_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);  // the clock of std::chrono::steady_clock
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
    return b > INT64_MAX - a ? INT64_MAX : a + b;
}

// SINGLETON_LOCK_TOKEN goes into this process's own copy of the environment, then exec.
// A vforked child leaves execve's errno in *failed (the parent's memory) when it fails.
[[noreturn]] void exec_command(const CommandImage& c, std::int64_t token,
                               volatile int* failed = nullptr) {
    if (c.token_slot != nullptr) {
        char digits[token_digits];
        unsigned n = 0;
        std::uint64_t v = token < 0 ? 0 : static_cast<std::uint64_t>(token);
        do {
            digits[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0 && n < token_digits);
        for (unsigned i = 0; i < n; ++i) c.token_slot[i] = digits[n - 1 - i];
        c.token_slot[n] = '\0';
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    open_files::restore_for_command();
    ::execve(c.path, c.argv, c.envp);
    const int error = errno;
    if (failed != nullptr) *failed = error;
    ::_exit(error == ENOENT ? 127 : 126);
}

// Closes every descriptor >= 3 but the three given ones (-1: none).
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

class SupervisingProcess {
  public:
    SupervisingProcess(int link, const CommandImage& command, std::int64_t grace_ns, bool warm)
        : link_(link), command_(command), grace_ns_(grace_ns), warm_(warm) {}
    [[noreturn]] void run(int gate_r, int gate_w);

  private:
    void fork_warm_command(int gate_r, int gate_w);
    void on_link();
    void on_start(const link::Message& m);
    void on_stop(int sig);
    void on_child_ended();
    void on_timers(std::int64_t now);
    int poll_timeout(std::int64_t now) const;
    [[noreturn]] void end(bool report);

    int link_;
    int sfd_ = -1;  // signalfd: SIGCHLD (and the signals we ignore)
    const CommandImage& command_;
    std::int64_t grace_ns_;
    bool warm_;         // COMMAND runs before start(): its end is reported, a stop obeyed
    pid_t child_ = -1;  // COMMAND's process (before start: waiting for its token); leads its group
    bool started_ = false;
    bool stopping_ = false;
    std::int64_t flags_ = 0;                // link::killed_at_grace_end | link::watchdog_fired
    std::int64_t deadline_ns_ = INT64_MAX;  // the watchdog: singleton-lock's deadline
    std::int64_t kill_ns_ = INT64_MAX;      // the end of the grace
};

void SupervisingProcess::run(int gate_r, int gate_w) {
    (void)reaper::become_subreaper();
    // A process group of its own: a stop of singleton-lock's group (Ctrl-Z's
    // SIGTSTP, `kill -STOP %1`) must leave the watchdog running, which stops
    // COMMAND before the lease runs out. (singleton-lock sets it too: no race.)
    (void)::setpgid(0, 0);
    // Only stdio, the link and the gate stay open: no database socket of
    // singleton-lock's survives in here except the ones it hands over.
    close_all_but(link_, gate_r, gate_w);
    sigset_t set;
    sigemptyset(&set);
    for (int s :
         {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGTSTP, SIGTTIN, SIGTTOU})
        sigaddset(&set, s);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);  // signals meant for COMMAND: read and ignored
    sfd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (warm_ && gate_r >= 0) fork_warm_command(gate_r, gate_w);
    if (gate_w >= 0) ::close(gate_w);
    if (sfd_ < 0) end(false);  // singleton-lock sees EOF: start() fails or it reports SIGKILL
    // The first message: up, with a warm COMMAND's process (0: none, start vforks it).
    (void)link::send(link_, {link::Kind::child, child_ > 0 ? child_ : 0, 0, 0});
    for (;;) {
        on_timers(monotonic_ns());
        pollfd fds[2] = {{link_, POLLIN, 0}, {sfd_, POLLIN, 0}};
        if (::poll(fds, 2, poll_timeout(monotonic_ns())) < 0) continue;
        if (fds[0].revents != 0) on_link();
        if (fds[1].revents != 0) {
            signalfd_siginfo si;
            while (::read(sfd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
            }
            on_child_ended();
        }
    }
}

// A warm COMMAND is forked and exec'd now, while standby, with the gate's read
// end as its SINGLETON_LOCK_LEADER_FD (the same descriptor number as in
// singleton-lock).
void SupervisingProcess::fork_warm_command(int gate_r, int gate_w) {
    child_ = ::fork();
    if (child_ == 0) {
        ::setpgid(0, 0);
        ::close(gate_w);
        ::close(link_);
        if (sfd_ >= 0) ::close(sfd_);
        if (::fcntl(gate_r, F_SETFD, 0) == 0) exec_command(command_, 0);
        ::_exit(126);
    }
    if (child_ > 0) ::setpgid(child_, child_);  // (also done by the child: whoever runs first)
    ::close(gate_r);
}

void SupervisingProcess::on_link() {
    link::Message m{};
    int fds[link::max_sockets];
    int nfds = 0;
    const int r = link::receive(link_, m, fds, &nfds);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
        end(false);  // singleton-lock is gone
    if (r < 0) return;
    if (m.kind == link::Kind::start && !started_) {
        on_start(m);  // the received sockets stay open, unused, until this process exits
        return;
    }
    for (int i = 0; i < nfds; ++i) ::close(fds[i]);
    if (m.kind == link::Kind::deadline && !stopping_) deadline_ns_ = m.b;
    if (m.kind == link::Kind::stop && (started_ || warm_)) on_stop(m.value);
    if (m.kind == link::Kind::pass_on && child_ > 0 && m.value > 0 && m.value < 65)
        ::kill(-child_, m.value);
}

void SupervisingProcess::on_start(const link::Message& m) {
    started_ = true;
    deadline_ns_ = m.b;
    if (child_ > 0) return;  // a warm COMMAND: singleton-lock has written its line
    // vfork: this process waits until the child has exec'd (or _exit'ed); the
    // child only writes the token into its environment (prepared before the
    // fork of this process), makes syscalls and, if execve fails, writes its
    // errno into exec_failed (which singleton-lock then names in its log).
    volatile int exec_failed = 0;
    child_ = ::vfork();
    if (child_ == 0) {
        ::setpgid(0, 0);
        exec_command(command_, m.a, &exec_failed);
    }
    if (child_ < 0) {
        (void)link::send(link_, {link::Kind::ended, 126 << 8, 0, 0});  // as if exited 126
        end(false);
    }
    ::setpgid(child_, child_);
    (void)link::send(link_, {link::Kind::child, child_, exec_failed, 0});
}

void SupervisingProcess::on_stop(int sig) {
    if (child_ > 0 && sig > 0 && sig < 65) ::kill(-child_, sig);
    if (!stopping_) {
        stopping_ = true;
        kill_ns_ = saturating_add(monotonic_ns(), grace_ns_);
    }
}

void SupervisingProcess::on_child_ended() {
    if (child_ <= 0 || !reaper::reap_ended(child_)) return;  // (adopted orphans were reaped)
    end(true);
}

void SupervisingProcess::on_timers(std::int64_t now) {
    if (started_ && !stopping_ && now >= deadline_ns_) {  // singleton-lock missed its deadline
        flags_ |= link::watchdog_fired;
        on_stop(SIGTERM);
    }
    if (stopping_ && now >= kill_ns_) {
        flags_ |= link::killed_at_grace_end;
        end(true);
    }
}

int SupervisingProcess::poll_timeout(std::int64_t now) const {
    const std::int64_t next = stopping_ ? kill_ns_ : (started_ ? deadline_ns_ : INT64_MAX);
    if (next == INT64_MAX) return -1;
    const std::int64_t ms = (next - now + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : static_cast<int>(ms < 0 ? 0 : ms);
}

// Everything of COMMAND's is killed and reaped first; only then does this
// process exit, closing its copies of the database sockets: with singleton-lock
// gone, that is the moment the server may see the lease's sessions end.
void SupervisingProcess::end(bool report) {
    int status = SIGKILL;  // (as if killed, should COMMAND's own status never be seen)
    const int reaped = reaper::kill_and_reap_all(child_, child_, &status, sfd_);
    if (report) {
        const link::Message m{link::Kind::ended, status, reaped > 0 ? reaped - 1 : 0, flags_};
        (void)link::send(link_, m);
    }
    // The database sockets close now, not in _exit after the process's memory
    // is unmapped (milliseconds on a slow VM): the backends see EOF sooner.
    ::close_range(3, ~0U, 0);
    ::_exit(0);
}

}  // namespace

void supervise(int link, int gate_r, int gate_w, const CommandImage& command, std::int64_t grace_ns,
               bool warm) {
    SupervisingProcess(link, command, grace_ns, warm).run(gate_r, gate_w);
}

}  // namespace singleton_lock::cli
