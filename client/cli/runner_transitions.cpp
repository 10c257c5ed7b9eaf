// The Runner's transitions and the elector's events (see runner.hpp).
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "exit_codes.hpp"
#include "runner.hpp"

namespace singleton_lock::cli {

namespace {

std::string describe(const CommandReport& r) {
    std::string s;
    if (WIFSIGNALED(r.status))
        s = std::string("was killed by signal ") + std::to_string(WTERMSIG(r.status)) + " (" +
            strsignal(WTERMSIG(r.status)) + ")";
    else
        s = "exited with status " + std::to_string(exit_code_of(r.status));
    if (r.watchdog_fired) s += "; the supervising process's watchdog had stopped it";
    if (r.grace_ran_out) s += "; grace over: SIGKILL to everything left of it";
    if (r.supervisor_lost) s += "; its supervising process died";
    if (r.leftovers > 0) s += "; " + std::to_string(r.leftovers) + " more of its processes killed";
    return s;
}

// COMMAND was checked before the lease was taken; its execve can still fail:
// a script's #! interpreter (or a program's ELF loader) missing, the file
// gone or changed since, E2BIG, ENOMEM. Said as a shell would say it.
std::string exec_failure(const std::string& path, const CommandReport& r) {
    std::string s = path + " could not be started: " + std::strerror(r.exec_errno);
    if (r.exec_errno == ENOENT && ::access(path.c_str(), F_OK) == 0)
        s += " (the interpreter its #! line names, or the loader it needs, is missing)";
    return s + "; exit status " + std::to_string(exit_code_of(r.status));
}

std::string backends(const std::vector<int>& pids) {
    std::string s;
    for (int p : pids) s += (s.empty() ? "" : ", ") + std::to_string(p);
    return s;
}

}  // namespace

ElectorEvents Runner::elector_events() {
    ElectorEvents ev;
    ev.on_standby = [this](const LeaseInfo& l) {
        last_retry_.clear();
        log("standby, held by " + (l.holder.empty() ? "?" : l.holder) + " until " + l.expires_at);
    };
    ev.on_leader = [this](const LeaseInfo& l) { on_leader(l); };
    ev.on_lost = [this](LossReason r, const std::string& d) { on_lost(r, d); };
    ev.on_step_down_requested = [this] { on_step_down_requested(); };
    ev.on_released = [this](bool ok) {
        log(ok ? "released"
               : "release not confirmed (the lease ends with its sessions or its TTL)");
    };
    ev.on_wait_expired = [this] {
        log(args_.warm ? "--wait ran out; stopping the warm COMMAND"
                       : "--wait ran out; COMMAND not started");
    };
    ev.on_retry = [this](const std::string& e, Duration in) { on_retry(e, in); };
    ev.on_failed = [this](const std::string& e) { log("giving up: " + e); };
    ev.on_warning = [this](const std::string& m) { log("warning: " + m); };
    ev.on_heartbeat = [this](std::chrono::microseconds rtt) { status_->heartbeat(rtt); };
    ev.on_database_error = [this](const std::string&) { status_->database_error(); };
    return ev;
}

void Runner::on_leader(const LeaseInfo& l) {
    last_retry_.clear();
    log("leader, token " + std::to_string(l.token) + ", expires " + l.expires_at + " (backends " +
        backends(l.backend_pids) + ")");
    if (phase_ == Phase::standby) start_command(l.token);
}

void Runner::on_lost(LossReason reason, const std::string& detail) {
    log(std::string("LOST (") + to_string(reason) + ": " + detail + ")");
    if (phase_ == Phase::running) {
        lost_ = true;
        log("stopping COMMAND: SIGTERM now, SIGKILL in " +
            format_duration(elector_->timing().grace));
        begin_stopping(SIGTERM);
    } else if (phase_ == Phase::stopping) {
        lost_ = true;  // already stopping (a forwarded signal)
    }
}

// A standby of higher priority asks for the lease: stop COMMAND as on SIGTERM;
// the release then hands the lease to that standby, and we wait as a standby.
void Runner::on_step_down_requested() {
    if (phase_ != Phase::running) return;  // already stopping: the release follows anyway
    log("a standby of higher priority asks for the lease: stopping COMMAND (SIGTERM now, SIGKILL "
        "in " +
        format_duration(elector_->timing().grace) + "), then handing the lease over");
    stepping_aside_ = true;
    begin_stopping(SIGTERM);
}

void Runner::on_retry(const std::string& error, Duration retry_in) {
    if (error != last_retry_)
        log("database unavailable (" + error + "); retrying in " + format_duration(retry_in));
    last_retry_ = error;
}

void Runner::start_command(std::int64_t token) {
    const auto sockets = elector_->session_sockets();
    try {
        if (!supervisor_.start(token, watchdog_deadline(), sockets)) {
            supervisor_.discard();  // (it died meanwhile, or was never forked)
            supervisor_.prepare(command_path_, args_.command, command_env_,
                                elector_->timing().grace);
            if (!supervisor_.start(token, watchdog_deadline(), sockets))
                throw std::runtime_error("the supervising process did not start");
        }
    } catch (const std::exception& e) {
        log(std::string("cannot start COMMAND: ") + e.what());
        exit_code_ = exit_code::error;
        begin_releasing();
        return;
    }
    phase_ = Phase::running;
    led_ = true;
    const std::string group = supervisor_.command_pid() > 0
                                  ? " in process group " + std::to_string(supervisor_.command_pid())
                                  : std::string();
    log(supervisor_.warm() ? "told the warm COMMAND" + group + " it leads"
                           : "started COMMAND" + group);
}

void Runner::begin_stopping(int sig) {
    supervisor_.stop(sig);
    if (phase_ == Phase::stopping) return;
    phase_ = Phase::stopping;
    const Timing& t = elector_->timing();
    fallback_kill_at_ = std::chrono::steady_clock::now() + t.grace + t.watchdog_slack;
}

// COMMAND and every process of its tree are gone: only now may the lease go.
void Runner::on_command_ended(const CommandReport& report) {
    log("COMMAND " +
        (report.exec_errno != 0 ? exec_failure(command_path_, report) : describe(report)));
    if (!led_) {  // a warm standby's COMMAND: nothing to release
        elector_->stop();
        fallback_kill_at_ = TimePoint::max();
        return finish(exit_after_warm_ ? exit_code_ : exit_code_of(report.status));
    }
    if (report.watchdog_fired) lost_ = true;
    exit_code_ = lost_ ? exit_code::lease_lost : exit_code_of(report.status);
    fallback_kill_at_ = TimePoint::max();
    begin_releasing();
}

void Runner::begin_releasing() {
    phase_ = Phase::releasing;
    elector_->release();
}

void Runner::on_elector_terminal() {
    switch (phase_) {
        case Phase::standby: {
            int code = exit_code::error;
            if (elector_->state() == State::wait_expired) code = exit_code::wait_expired;
            if (elector_->state() == State::stopped && stop_signal_ > 0)
                code = exit_code::signal_base + stop_signal_;
            if (supervisor_.warm() && supervisor_.prepared())
                return exit_after_command(code, SIGTERM);  // the warm COMMAND goes first
            return finish(code);
        }
        case Phase::releasing:
            if (stepping_aside_ && !lost_ && !signalled_) return standby_again();
            return finish(exit_code_);
        case Phase::running:  // (the elector never ends while COMMAND runs)
            lost_ = true;
            return begin_stopping(SIGTERM);
        case Phase::stopping:
        case Phase::done:
            return;
    }
}

// A warm standby's COMMAND is stopped (sig, SIGKILL at the end of the grace)
// before the process exits with exit_code.
void Runner::exit_after_command(int exit_code, int sig) {
    exit_code_ = exit_code;
    exit_after_warm_ = true;
    begin_stopping(sig);
}

void Runner::finish(int exit_code) {
    exit_code_ = exit_code;
    phase_ = Phase::done;
}

}  // namespace singleton_lock::cli
