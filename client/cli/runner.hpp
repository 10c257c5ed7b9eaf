// singleton-lock run, as a state machine over three inputs (signals, the
// elector's sessions, the supervising process's link):
//
//   standby ──leader──> running ──COMMAND ended──────────────> releasing ──> done
//      │                   │                                     ^
//      │                   └─lost / SIGTERM─> stopping ─ended────┘
//      └─SIGTERM, --wait ran out, fatal error──────────────────────────────> done
//
// standby:   the elector waits for the lease; the supervisor is pre-forked
//            (with --warm, COMMAND already runs and waits for its leader line).
// running:   COMMAND runs; the supervisor's watchdog follows every heartbeat.
// stopping:  COMMAND's group got a signal (forwarded, SIGTERM on loss or on a
//            step-down request); the supervisor SIGKILLs everything left at the
//            end of the grace.
// releasing: COMMAND and every descendant are reaped: now the lease is released.
//            After a step-down (a standby of higher priority asked for the
//            lease) the release hands it over and a new elector starts: standby.
// done:      the exit code is known.
//
// --warm as standby: a signal, or COMMAND's own end, goes through stopping to
// done (nothing to release).
#pragma once

#include <poll.h>

#include <chrono>
#include <memory>
#include <string>

#include "args.hpp"
#include "health_module.hpp"
#include "run_status.hpp"
#include "singleton_lock/elector.hpp"
#include "supervisor.hpp"

namespace singleton_lock::cli {

class Runner {
  public:
    // Throws UsageError for invalid options, std::exception when the health
    // endpoint cannot listen. signal_fd: a signalfd for SIGTERM and SIGINT.
    Runner(const RunArgs& args, std::string command_path, int signal_fd);
    int run();  // the process's exit code

  private:
    enum class Phase { standby, running, stopping, releasing, done };
    using TimePoint = std::chrono::steady_clock::time_point;

    ElectorEvents elector_events();
    void prepare_supervisor();
    // elector events
    void on_leader(const LeaseInfo& lease);
    void on_lost(LossReason reason, const std::string& detail);
    void on_step_down_requested();
    void on_retry(const std::string& error, Duration retry_in);
    // transitions
    void start_command(std::int64_t token);
    void begin_stopping(int sig);
    void begin_releasing();
    void standby_again();
    void exit_after_command(int exit_code, int sig);
    void finish(int exit_code);
    // inputs
    void read_signals();
    void on_signal(int sig);
    void pass_on(int sig, const std::string& name);  // SIGHUP, SIGUSR1, SIGUSR2, SIGQUIT
    void on_supervisor();
    void on_command_ended(const CommandReport& report);
    void on_elector_terminal();
    void refresh();
    void timers();
    int poll_once();
    TimePoint watchdog_deadline() const;
    Duration grace_left() const;
    void log(const std::string& message) const;

    RunArgs args_;
    std::string command_path_;
    int signal_fd_;
    std::unique_ptr<Elector> elector_;
    std::unique_ptr<Elector> retired_;  // stepped down: closes its sessions at retired_until_
    TimePoint retired_until_{};
    std::vector<std::string> command_env_;
    Supervisor supervisor_;
    std::unique_ptr<RunStatus> status_;  // read by the health endpoint's thread
    std::unique_ptr<HealthEndpoint> health_;
    Phase phase_ = Phase::standby;
    int exit_code_ = 1;
    int stop_signal_ = 0;                            // the signal that stopped a standby
    bool lost_ = false;                              // the lease was lost while COMMAND ran
    bool led_ = false;            // COMMAND was told it leads (this tenure)
    bool stepping_aside_ = false;  // stopping COMMAND for a standby of higher priority
    bool signalled_ = false;       // SIGTERM/SIGINT while COMMAND ran or ended: exit after the release
    bool exit_after_warm_ = false;  // a warm standby's COMMAND is being stopped: then exit
    TimePoint fallback_kill_at_ = TimePoint::max();  // stopping: the supervisor must have reported
    std::string last_retry_;
};

}  // namespace singleton_lock::cli
