#include "supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <stdexcept>
#include <system_error>

#include "reaper.hpp"
#include "supervise.hpp"
#include "supervisor_link.hpp"

namespace singleton_lock::cli {

namespace {

std::int64_t to_ns(std::chrono::steady_clock::time_point t) {
    if (t == std::chrono::steady_clock::time_point::max()) return INT64_MAX;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void wait_for(pid_t pid) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
}

// The supervisor's first message says it is up and names a warm COMMAND's
// process (0: none yet, start() has it vforked). -1: it did not come up.
pid_t read_child_pid(int link) {
    pollfd p{link, POLLIN, 0};
    link::Message m{};
    if (::poll(&p, 1, 5000) <= 0 || link::receive(link, m) != 1 || m.kind != link::Kind::child)
        return -1;
    return m.value;
}

}  // namespace

int exit_code_of(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    return 1;
}

void Supervisor::prepare(const std::string& path, const std::vector<std::string>& argv,
                         const std::vector<std::string>& env, std::chrono::nanoseconds grace,
                         bool warm) {
    reap_exited();  // the last one's (its release has been sent)
    if (pid_ > 0) throw std::logic_error("Supervisor::prepare: already prepared");
    int gate[2] = {-1, -1};  // (cold: none, the supervisor vforks COMMAND's child at start)
    // A pipe: COMMAND reads a line from it (a datagram would truncate short reads).
    if (warm && ::pipe2(gate, O_CLOEXEC) != 0)
        throw std::system_error(errno, std::generic_category(), "pipe");
    // Everything COMMAND needs is built before the fork; at start the token's
    // digits are written into the supervising process's copy of token_var (by
    // its vforked child, which shares that memory until it execs).
    std::string token_var = "SINGLETON_LOCK_TOKEN=" + std::string(token_digits, '0');
    const std::string leader_fd_var = "SINGLETON_LOCK_LEADER_FD=" + std::to_string(gate[0]);
    std::vector<char*> cargv, cenv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(const_cast<char*>(warm ? leader_fd_var.c_str() : token_var.c_str()));
    cenv.push_back(nullptr);
    const CommandImage image{path.c_str(), cargv.data(), cenv.data(),
                             warm ? nullptr : token_var.data() + (token_var.size() - token_digits)};
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        const int e = errno;
        for (int fd : gate)
            if (fd >= 0) ::close(fd);
        throw std::system_error(e, std::generic_category(), "socketpair");
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        for (int fd : {sv[0], sv[1], gate[0], gate[1]})
            if (fd >= 0) ::close(fd);
        throw std::system_error(e, std::generic_category(), "fork");
    }
    if (pid == 0) supervise(sv[1], gate[0], gate[1], image, grace.count(), warm);
    (void)::setpgid(pid, pid);  // its own group, whoever of the two runs first (supervise.cpp)
    ::close(sv[1]);
    if (gate[0] >= 0) ::close(gate[0]);
    pid_ = pid;
    link_ = sv[0];
    gate_ = gate[1];
    started_ = false;
    warm_ = warm;
    report_.reset();
    const pid_t child = read_child_pid(link_);
    if (child < 0 || (warm && child == 0)) {
        discard();
        throw std::runtime_error(child < 0 ? "the supervising process did not come up"
                                           : "the supervising process could not fork COMMAND");
    }
    command_pid_ = child;
    exec_errno_ = 0;
}

bool Supervisor::start(std::int64_t token, TimePoint watchdog_deadline,
                       const std::vector<int>& sockets) {
    if (!prepared()) return false;
    const link::Message m{link::Kind::start, 0, token, to_ns(watchdog_deadline)};
    if (!link::send(link_, m, sockets.data(), static_cast<int>(sockets.size()))) return false;
    started_ = true;
    sent_deadline_ = watchdog_deadline;
    // "start" is queued on the link now, with the sockets: a child that dies
    // from here on counts as COMMAND, and should singleton-lock die now, the
    // supervisor still receives the sockets before it sees EOF. Wake the child.
    close_gate(&token);
    return true;
}

void Supervisor::close_gate(const std::int64_t* token) {
    if (gate_ < 0) return;
    if (token) {  // one line into an empty pipe: never blocks, never partial
        const std::string line = "leader " + std::to_string(*token) + "\n";
        (void)!::write(gate_, line.data(), line.size());
    }
    ::close(gate_);
    gate_ = -1;
}

void Supervisor::discard() {
    if (!prepared()) return;
    ::kill(pid_, SIGKILL);
    collect_remains();  // a warm COMMAND it ran, adopted by us
    close_gate(nullptr);
    command_pid_ = 0;
}

void Supervisor::extend(TimePoint watchdog_deadline) {
    if (!running() || watchdog_deadline == sent_deadline_) return;
    if (link::send(link_, {link::Kind::deadline, 0, 0, to_ns(watchdog_deadline)}))
        sent_deadline_ = watchdog_deadline;
}

void Supervisor::stop(int sig) {
    if (running() || (warm_ && prepared())) (void)link::send(link_, {link::Kind::stop, sig, 0, 0});
}

void Supervisor::pass_on(int sig) {
    if (running() || (warm_ && prepared()))
        (void)link::send(link_, {link::Kind::pass_on, sig, 0, 0});
}

void Supervisor::kill_supervisor() {
    if (running()) ::kill(pid_, SIGKILL);
}

Supervisor::Event Supervisor::on_readable() {
    if (link_ < 0) return Event::none;
    link::Message m{};
    const int r = link::receive(link_, m);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return Event::none;
    if (r == 1 && m.kind == link::Kind::child) {
        command_pid_ = m.value;
        exec_errno_ = static_cast<int>(m.a);
        return Event::none;
    }
    if (prepared() && !warm_) {  // it died before COMMAND ever started
        discard();
        return Event::helper_lost;
    }
    report_ = read_report(r, m);
    if (report_->supervisor_lost) {
        collect_remains();  // its orphans are ours to kill before anything else happens
    } else {
        // It reported after killing and reaping all of COMMAND's: only its own
        // exit is left. Waiting for that (milliseconds of unmapping on a slow
        // VM) would delay the release; it is reaped later (reap_exited()).
        exiting_pid_ = pid_;
        forget_process();
    }
    return Event::ended;
}

CommandReport Supervisor::read_report(int received, const link::Message& m) const {
    CommandReport rep;
    if (received == 1 && m.kind == link::Kind::ended) {
        rep.status = m.value;
        rep.leftovers = static_cast<int>(m.a);
        rep.grace_ran_out = (m.b & link::killed_at_grace_end) != 0;
        rep.watchdog_fired = (m.b & link::watchdog_fired) != 0;
        rep.exec_errno = exec_errno_;
    } else {
        rep.status = SIGKILL;  // "killed by signal 9": it died without a report
        rep.supervisor_lost = true;
    }
    return rep;
}

// Reaps the supervising process, then kills and reaps whatever it left: its
// orphans were re-parented to this process (a subreaper) when it died. After a
// report it left nothing (it had no child left), which one waitpid confirms.
void Supervisor::collect_remains() {
    wait_for(pid_);
    reap_orphans();
    forget_process();
}

void Supervisor::forget_process() {
    ::close(link_);
    link_ = -1;
    pid_ = -1;
}

void Supervisor::reap_orphans() {
    const pid_t other = ::waitpid(-1, nullptr, WNOHANG);
    if (other != -1 || errno != ECHILD) {
        const int reaped = reaper::kill_and_reap_all(0, -1, nullptr, -1) + (other > 0 ? 1 : 0);
        if (report_) report_->leftovers += reaped;
    }
}

// Before any new fork: reap_orphans() must not take a new supervisor for an orphan.
void Supervisor::reap_exited() {
    if (exiting_pid_ <= 0) return;
    wait_for(exiting_pid_);
    exiting_pid_ = -1;
    reap_orphans();
}

Supervisor::~Supervisor() {
    discard();
    reap_exited();
    if (running()) {
        kill_supervisor();
        report_ = CommandReport{};
        collect_remains();
    }
    if (link_ >= 0) ::close(link_);
    close_gate(nullptr);
}

}  // namespace singleton_lock::cli
