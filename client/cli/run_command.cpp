// singleton-lock run: one thread polls the signals, the elector's connection
// and COMMAND's supervisor link; the health endpoint has its own threads and
// only reads an atomic flag.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.hpp"
#include "exit_codes.hpp"
#include "health.hpp"
#include "log.hpp"
#include "policy.hpp"
#include "singleton_lock/elector.hpp"
#include "supervisor.hpp"

extern char** environ;

namespace singleton_lock::cli {

namespace {

using policy::Clock;
using policy::TimePoint;

// COMMAND's environment but SINGLETON_LOCK_TOKEN (the supervisor adds it at start).
std::vector<std::string> command_environment(const std::string& name, const std::string& holder) {
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        const std::string s(*e);
        if (s.rfind("SINGLETON_LOCK_NAME=", 0) == 0 || s.rfind("SINGLETON_LOCK_TOKEN=", 0) == 0 ||
            s.rfind("SINGLETON_LOCK_HOLDER=", 0) == 0)
            continue;
        env.push_back(s);
    }
    env.push_back("SINGLETON_LOCK_NAME=" + name);
    env.push_back("SINGLETON_LOCK_HOLDER=" + holder);
    return env;
}

std::string describe_status(int st) {
    if (WIFSIGNALED(st))
        return std::string("was killed by signal ") + std::to_string(WTERMSIG(st)) + " (" +
               strsignal(WTERMSIG(st)) + ")";
    return "exited with status " + std::to_string(exit_code_of(st));
}

int poll_timeout(TimePoint wake) {
    if (wake == TimePoint::max()) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
}

}  // namespace

int run_command(const RunArgs& a) {
    const auto path = Supervisor::resolve(a.command.front());
    if (!path) {
        log("COMMAND not found: " + a.command.front());
        return exit_code::not_found;
    }

    // Signals are read from a signalfd; block them before any thread starts.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    const int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        log(std::string("signalfd: ") + std::strerror(errno));
        return exit_code::error;
    }
    signal(SIGPIPE, SIG_IGN);

    std::atomic<bool> leader_flag{false};
    bool lost = false;
    std::string last_retry;

    ElectorOptions o;
    o.name = a.name;
    o.dsn = a.dsn;
    o.ttl = a.ttl;
    o.grace = a.grace;
    o.holder = a.holder;
    o.wait = a.wait;
    o.schema = a.schema;
    const std::string lease = "lease \"" + a.name + "\": ";

    // Starts the prepared COMMAND right from the leader event, before the elector
    // sends its confirming heartbeat (set below; the main loop covers the rest).
    std::function<void()> start_prepared;

    ElectorEvents ev;
    ev.on_standby = [&](const LeaseInfo& l) {
        last_retry.clear();
        log(lease + "standby, held by " + (l.holder.empty() ? "?" : l.holder) + " until " +
            l.expires_at);
    };
    ev.on_leader = [&](const LeaseInfo& l) {
        last_retry.clear();
        log(lease + "leader, token " + std::to_string(l.token) + ", expires " + l.expires_at);
        if (start_prepared) start_prepared();
    };
    ev.on_lost = [&](LossReason r, const std::string& detail) {
        lost = true;
        leader_flag = false;
        log(lease + "LOST (" + to_string(r) + ": " + detail + ")");
    };
    ev.on_released = [&](bool ok) {
        log(lease + (ok ? "released"
                        : "release not confirmed (the lease ends with the session or its TTL)"));
    };
    ev.on_wait_expired = [&] { log(lease + "--wait ran out; COMMAND not started"); };
    ev.on_retry = [&](const std::string& err, Duration in) {
        if (err != last_retry)
            log(lease + "database unavailable (" + err + "); retrying in " + format_duration(in));
        last_retry = err;
    };
    ev.on_failed = [&](const std::string& err) { log(lease + "giving up: " + err); };

    std::unique_ptr<Elector> elector;
    try {
        elector = std::make_unique<Elector>(o, ev);
    } catch (const UsageError& e) {
        log(e.what());
        return exit_code::usage;
    }
    const policy::Timing timing = policy::make_timing(a.ttl, a.grace);

    // The supervising process and COMMAND's child are forked now, while this
    // process is small and single-threaded, so that becoming leader costs no
    // fork here (handover latency). They hold no database socket and run
    // COMMAND only on start(); if that fails, they are forked at leadership.
    const std::vector<std::string> command_env =
        command_environment(a.name, elector->options().holder);
    Supervisor child;
    try {
        child.prepare(*path, a.command, command_env, timing.grace);
    } catch (const std::exception& e) {
        log(std::string("cannot fork the supervising process now (retried at leadership): ") +
            e.what());
    }

    std::unique_ptr<HealthServer> health;
    if (a.health) {
        try {
            health = std::make_unique<HealthServer>(a.health->host, a.health->port, leader_flag);
            log("health endpoint on http://" + a.health->host + ":" +
                std::to_string(health->port()));
        } catch (const std::exception& e) {
            log(std::string("health endpoint: ") + e.what());
            return exit_code::error;
        }
    }

    log(lease + "waiting as " + elector->options().holder + " (ttl " + format_duration(a.ttl) +
        ", grace " + format_duration(timing.grace) + ", wait " +
        (a.wait ? format_duration(*a.wait) : "forever") + ")");
    elector->start();

    int stop_signal = 0;
    bool term_sent = false;
    bool release_started = false;
    bool exited_before_loss = false;
    TimePoint kill_deadline = TimePoint::max();

    const auto watchdog_deadline = [&] {
        const auto t = elector->step_down_at();
        return t == TimePoint::max() ? t : t + policy::watchdog_slack(timing);
    };
    const auto log_started = [&] {
        log(lease + "started COMMAND in process group " + std::to_string(child.pgid()));
    };
    start_prepared = [&] {
        if (stop_signal == 0 && child.prepared() && elector->state() == State::leader &&
            child.start(elector->token(), watchdog_deadline()))
            log_started();
    };

    for (;;) {
        const State st = elector->state();
        if (st == State::leader && child.running()) child.extend(watchdog_deadline());
        leader_flag = (st == State::leader) && !lost;

        if (!child.spawned()) {
            if (st == State::leader && stop_signal == 0) {
                try {
                    const std::int64_t token = elector->token();
                    if (!child.start(token, watchdog_deadline())) {
                        child.discard();  // (it died meanwhile, or was never forked)
                        child.prepare(*path, a.command, command_env, timing.grace);
                        if (!child.start(token, watchdog_deadline()))
                            throw std::runtime_error("the supervising process did not start");
                    }
                    log_started();
                } catch (const std::exception& e) {
                    log(std::string("cannot start COMMAND: ") + e.what());
                    elector->release();
                    stop_signal = -1;
                }
            } else if (is_terminal(st)) {
                switch (st) {
                    case State::wait_expired:
                        return exit_code::wait_expired;
                    case State::failed:
                        return exit_code::error;
                    case State::lost:
                        return exit_code::lease_lost;
                    default:
                        if (stop_signal > 0) return exit_code::signal_base + stop_signal;
                        return exit_code::error;
                }
            }
        } else if (child.status()) {
            const int code = exit_code_of(*child.status());
            // Lost while COMMAND ran: 3. Lost only afterwards (say, the release
            // could not be sent): COMMAND had already finished under the lease.
            if (lost && !exited_before_loss) return exit_code::lease_lost;
            if (!release_started && st == State::leader) {
                release_started = true;
                elector->release();
                continue;
            }
            if (st != State::leader && st != State::releasing)
                return code;  // released (or lost after)
        } else if (lost && !term_sent) {
            child.signal_group(SIGTERM);
            term_sent = true;
            kill_deadline = policy::kill_at(timing, Clock::now());
            log(lease + "stopping COMMAND: SIGTERM now, SIGKILL in " +
                format_duration(timing.grace));
        }

        pollfd fds[3] = {
            {sfd, POLLIN, 0}, {elector->fd(), elector->events(), 0}, {child.fd(), POLLIN, 0}};
        const int n = ::poll(fds, 3, poll_timeout(std::min(elector->next_wakeup(), kill_deadline)));
        if (n < 0 && errno != EINTR) {
            log(std::string("poll: ") + std::strerror(errno));
            return exit_code::error;
        }
        if (n > 0 && (fds[0].revents & POLLIN)) {
            signalfd_siginfo si{};
            while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
                const int sig = static_cast<int>(si.ssi_signo);
                if (!child.spawned()) {
                    stop_signal = sig;
                    log(lease + "received SIG" + sigabbrev_np(sig) + " as standby; exiting");
                    elector->stop();
                } else if (child.running()) {
                    if (stop_signal <= 0) stop_signal = sig;
                    child.signal_group(sig);
                    if (!term_sent) {
                        term_sent = true;
                        kill_deadline = policy::kill_at(timing, Clock::now());
                    }
                    log(lease + "forwarded SIG" + sigabbrev_np(sig) + " to COMMAND; SIGKILL in " +
                        format_duration(timing.grace) + " if it is still running");
                }
            }
        }
        if (child.prepared() && fds[2].revents != 0) {
            child.discard();
            log(lease + "the pre-forked supervising process ended; forking it at leadership");
        }
        if (child.running() && fds[2].revents != 0) {
            const int status = child.collect();
            // (the supervisor's watchdog may have acted while we were stopped)
            exited_before_loss = !lost && Clock::now() < elector->step_down_at();
            log(lease + "COMMAND " + describe_status(status));
        }
        if (child.running() && Clock::now() >= kill_deadline) {
            child.signal_group(SIGKILL);
            kill_deadline = TimePoint::max();
            log(lease + "grace over: SIGKILL to COMMAND's process group");
        }
        elector->step(fds[1].revents);
    }
}

}  // namespace singleton_lock::cli
