// COMMAND in its own process group, under a tiny supervising process that is
// the group leader:
//
//   singleton-lock ──socketpair── supervisor (pgid leader) ── COMMAND (+ its children)
//
// The supervisor reports COMMAND's wait status over the socket, and kills the
// whole group (SIGKILL) when COMMAND ends (no stray children keep running
// without the lease) or when the socket reaches EOF, i.e. when singleton-lock
// died, even by SIGKILL: the kernel closes its end. No PDEATHSIG race.
//
// It is forked early, while singleton-lock is still a standby (prepare()), and
// at once forks the child that will exec COMMAND; that child blocks on a pipe.
// On leadership start() sends the token and the first deadline, the child puts
// SINGLETON_LOCK_TOKEN into its environment and execs COMMAND: no fork of
// singleton-lock itself on the way from "leader" to COMMAND. Until then the
// pair holds no database socket and never runs COMMAND; if singleton-lock ends
// as a standby it kills and reaps them (discard(), or the EOF rule above).
//
// It is also a watchdog: singleton-lock sends it the latest deadline (a
// monotonic time) after every confirmed heartbeat; if that passes, say because
// singleton-lock itself hangs (SIGSTOP), the supervisor SIGTERMs the group and
// SIGKILLs it after the grace, on its own.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace singleton_lock::cli {

class Supervisor {
  public:
    Supervisor() = default;
    ~Supervisor();
    Supervisor(const Supervisor&) = delete;
    Supervisor& operator=(const Supervisor&) = delete;

    // PATH lookup like execvp; std::nullopt when not found.
    static std::optional<std::string> resolve(const std::string& command);

    // Forks the supervising process (and its waiting COMMAND child) now; COMMAND
    // runs only after start(). env: COMMAND's environment without
    // SINGLETON_LOCK_TOKEN, which start() supplies. grace: the watchdog's
    // SIGTERM-to-SIGKILL time. Throws std::system_error when fork/socketpair fail.
    void prepare(const std::string& path, const std::vector<std::string>& argv,
                 const std::vector<std::string>& env, std::chrono::nanoseconds grace);
    // Runs the prepared COMMAND with SINGLETON_LOCK_TOKEN=token; the watchdog
    // SIGTERMs the group at deadline (moved by extend()). False when the
    // supervising process is gone (then discard() and prepare() again).
    bool start(std::int64_t token, std::chrono::steady_clock::time_point deadline);
    // Kills and reaps a prepared supervisor whose COMMAND never started (no-op otherwise).
    void discard();
    // Moves the watchdog's deadline (no-op when unchanged or not running).
    void extend(std::chrono::steady_clock::time_point deadline);

    bool prepared() const { return pid_ > 0 && !started_; }  // waiting for start()
    bool spawned() const { return started_; }                // COMMAND was started
    pid_t pgid() const { return pid_; }
    bool running() const { return started_ && pid_ > 0 && !status_; }
    // Readable: COMMAND ended or the supervisor died (prepared(): it died, discard() it).
    int fd() const { return running() || prepared() ? link_ : -1; }
    void signal_group(int sig) const;                  // kill(-pgid, sig) while running
    // Call when fd() is readable: COMMAND's wait status (SIGKILL if the supervisor died first).
    int collect();
    std::optional<int> status() const { return status_; }

  private:
    void close_gate(const std::int64_t* token);
    pid_t pid_ = -1;  // supervisor = process group id
    int link_ = -1;
    int gate_ = -1;  // write end of the COMMAND child's gate, until start()
    bool started_ = false;
    std::optional<int> status_;
    std::chrono::steady_clock::time_point sent_deadline_{};
};

// Shell convention: exit code, or 128+N for death by signal N.
int exit_code_of(int wait_status);

}  // namespace singleton_lock::cli
