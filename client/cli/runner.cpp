// The Runner's loop and inputs; its transitions: runner_transitions.cpp.
#include "runner.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <optional>

#include "command.hpp"
#include "exit_codes.hpp"
#include "log.hpp"

namespace singleton_lock::cli {

namespace {

ElectorOptions elector_options(const RunArgs& a) {
    ElectorOptions o;
    o.name = a.name;
    o.dsn = a.dsn;
    o.ttl = a.ttl;
    o.grace = a.grace;
    o.holder = a.holder;
    o.wait = a.wait;
    o.schema = a.schema;
    o.priority = a.priority;
    o.second_session = true;
    return o;
}

// How long the sessions (and the backends) of a released lease outlive the
// release: the next leader's start-up does not share the CPUs with their exits.
constexpr std::chrono::milliseconds kCloseAfterRelease{50};

// /livez fails when the loop has not gone round for this long (it wakes at
// least once a second; nothing in it blocks for long).
constexpr Duration kStuckAfter = std::chrono::seconds(10);

int timeout_ms(std::chrono::steady_clock::time_point wake) {
    if (wake == std::chrono::steady_clock::time_point::max()) return -1;
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(wake - std::chrono::steady_clock::now())
            .count();
    return static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
}

}  // namespace

Runner::Runner(const RunArgs& args, std::string command_path, int signal_fd)
    : args_(args), command_path_(std::move(command_path)), signal_fd_(signal_fd) {
    elector_ = std::make_unique<Elector>(elector_options(args_), elector_events());
    args_.holder = elector_->options().holder;  // the same id for every tenure of this process
    command_env_ = command_environment(args_.name, args_.holder);
    // A waiting standby hears from the server at least once per wait slice (1 s).
    const Timing& t = elector_->timing();
    status_ =
        std::make_unique<RunStatus>(args_.name, std::max(t.ttl, 2 * t.wait_slice_max), kStuckAfter);
    std::optional<HealthModule> health_module;
    if (args_.health) health_module.emplace();  // before the fork (health_module.hpp)
    prepare_supervisor();  // before any thread starts (the health endpoint's)
    if (health_module) {
        health_ = health_module->open(args_.health->host, args_.health->port, *status_);
        const std::string& host = args_.health->host;  // (an IPv6 address in brackets)
        cli::log("health endpoint on http://" +
                 (host.find(':') == std::string::npos ? host : "[" + host + "]") + ":" +
                 std::to_string(health_->port()));
    }
}

// The supervising process is forked now, while this process is small and
// single-threaded, so that becoming leader costs only its vfork of COMMAND
// (handover latency); a warm COMMAND starts now too. If that fails, it is
// forked at leadership.
void Runner::prepare_supervisor() {
    try {
        supervisor_.prepare(command_path_, args_.command, command_env_, elector_->timing().grace,
                            args_.warm);
        if (args_.warm) log("started COMMAND (warm standby) in process group " +
                            std::to_string(supervisor_.command_pid()));
    } catch (const std::exception& e) {
        log(std::string("cannot fork the supervising process now (retried at leadership): ") +
            e.what());
    }
}

// After handing the lease to a standby of higher priority: a new elector (the
// same holder id) and a new supervisor (a warm COMMAND starts afresh).
void Runner::standby_again() {
    log("stepped down; waiting as a standby again");
    retired_ = std::move(elector_);  // its sessions close a little later (kCloseAfterRelease)
    retired_until_ = std::chrono::steady_clock::now() + kCloseAfterRelease;
    elector_ = std::make_unique<Elector>(elector_options(args_), elector_events());
    phase_ = Phase::standby;
    exit_code_ = exit_code::error;
    lost_ = led_ = stepping_aside_ = false;
    prepare_supervisor();
    elector_->start();
}

int Runner::run() {
    const Timing& t = elector_->timing();
    log("waiting as " + elector_->options().holder + " (ttl " + format_duration(t.ttl) +
        ", grace " + format_duration(t.grace) + ", wait " +
        (args_.wait ? format_duration(*args_.wait) : "forever") +
        (args_.priority != 0 ? ", priority " + std::to_string(args_.priority) : "") + ")");
    elector_->start();
    while (phase_ != Phase::done) {
        flush_log();  // what a stalled stderr could not take yet
        refresh();
        if (phase_ == Phase::done) break;
        if (poll_once() != 0) return exit_code::error;
        timers();
    }
    status_->set_leader(false, 0);
    // After a release the elector keeps its sessions: their backends exit only
    // now, when the next leader has started (they would compete for the CPU).
    const State end = elector_->state();
    if (end == State::released || end == State::lost) ::usleep(kCloseAfterRelease.count() * 1000);
    elector_->stop();
    return exit_code_;
}

int Runner::poll_once() {
    pollfd fds[2 + Elector::max_pollfds] = {{signal_fd_, POLLIN, 0}, {supervisor_.fd(), POLLIN, 0}};
    const int n = elector_->pollfds(fds + 2);
    // At least once a second, so that /livez sees the loop go round.
    const TimePoint wake = std::min({elector_->next_wakeup(), fallback_kill_at_,
                                     retired_ ? retired_until_ : TimePoint::max(),
                                     std::chrono::steady_clock::now() + std::chrono::seconds(1)});
    if (::poll(fds, static_cast<nfds_t>(2 + n), timeout_ms(wake)) < 0 && errno != EINTR) {
        log(std::string("poll: ") + std::strerror(errno));
        return -1;
    }
    if (fds[0].revents != 0) read_signals();
    if (fds[1].revents != 0) on_supervisor();
    elector_->step(fds + 2, n);
    return 0;
}

// Before every wait: the watchdog follows the lease; the health flag; the elector's end.
void Runner::refresh() {
    const State st = elector_->state();
    if (st == State::leader) supervisor_.extend(watchdog_deadline());
    status_->tick();
    status_->set_leader(phase_ == Phase::running && st == State::leader, elector_->token());
    status_->contact(elector_->last_contact());
    if (is_terminal(st)) on_elector_terminal();
}

void Runner::timers() {
    if (retired_ && std::chrono::steady_clock::now() >= retired_until_) retired_.reset();
    if (phase_ != Phase::stopping || std::chrono::steady_clock::now() < fallback_kill_at_) return;
    fallback_kill_at_ = TimePoint::max();
    log("the supervising process did not report by the end of the grace: killing it");
    supervisor_.kill_supervisor();
}

void Runner::read_signals() {
    signalfd_siginfo si{};
    while (::read(signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si))
        on_signal(static_cast<int>(si.ssi_signo));
}

void Runner::on_signal(int sig) {
    const std::string name = std::string("SIG") + sigabbrev_np(sig);
    if (sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
        log("ignored " + name + ": a stopped singleton-lock could not renew the lease (stop it " +
            "with SIGTERM)");
        return;
    }
    if (sig != SIGTERM && sig != SIGINT) return pass_on(sig, name);
    switch (phase_) {
        case Phase::standby:
            stop_signal_ = sig;
            elector_->stop();
            if (!supervisor_.warm() || !supervisor_.prepared()) {
                log("received " + name + " as standby; exiting");
                return;
            }
            log("received " + name + " as standby; stopping the warm COMMAND (SIGKILL in " +
                format_duration(elector_->timing().grace) + ")");
            exit_after_command(exit_code::signal_base + sig, sig);
            return;
        case Phase::running:
            signalled_ = true;
            log("forwarded " + name + " to COMMAND; SIGKILL in " +
                format_duration(elector_->timing().grace) + " if it is still running");
            begin_stopping(sig);
            return;
        case Phase::stopping:  // forwarded again; the grace runs from the first stop, not anew
            signalled_ = true;
            log("forwarded " + name + " to COMMAND again; SIGKILL in " +
                format_duration(grace_left()) + " if it is still running (the grace began " +
                "with the first stop)");
            begin_stopping(sig);
            return;
        case Phase::releasing:  // after a step-down too: exit once released, not standby again
            signalled_ = true;
            log("received " + name + "; COMMAND has ended: exiting once the lease is released");
            return;
        case Phase::done:
            return;
    }
}

// SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT: COMMAND's business (a reload, a dump),
// not a stop; the lease is unaffected. Should COMMAND die of one, that is its
// exit as any other.
void Runner::pass_on(int sig, const std::string& name) {
    const bool command_runs = phase_ == Phase::running || phase_ == Phase::stopping ||
                              (phase_ == Phase::standby && supervisor_.warm() &&
                               supervisor_.prepared());
    if (!command_runs) {
        log("received " + name + "; no COMMAND runs to pass it to: ignored");
        return;
    }
    supervisor_.pass_on(sig);
    log("passed " + name + " on to COMMAND");
}

void Runner::on_supervisor() {
    switch (supervisor_.on_readable()) {
        case Supervisor::Event::none:
            return;
        case Supervisor::Event::helper_lost:
            log("the pre-forked supervising process ended; forking it at leadership");
            return;
        case Supervisor::Event::ended:
            on_command_ended(*supervisor_.report());
            return;
    }
}

Runner::TimePoint Runner::watchdog_deadline() const {
    const TimePoint t = elector_->step_down_at();
    return t == TimePoint::max() ? t : t + elector_->timing().watchdog_slack;
}

// Stopping: what is left of the grace the supervising process gives COMMAND
// (begin_stopping: fallback_kill_at_ = the first stop + grace + slack).
Duration Runner::grace_left() const {
    const auto left = fallback_kill_at_ - elector_->timing().watchdog_slack -
                      std::chrono::steady_clock::now();
    return std::max(std::chrono::duration_cast<Duration>(left), Duration::zero());
}

void Runner::log(const std::string& message) const {
    cli::log("lease \"" + args_.name + "\": " + message);
}

}  // namespace singleton_lock::cli
