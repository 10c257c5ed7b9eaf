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
// It is also a watchdog: singleton-lock sends it the latest deadline (a
// monotonic time) after every confirmed heartbeat; if that passes, say because
// singleton-lock itself hangs (SIGSTOP), the supervisor SIGTERMs the group and
// SIGKILLs it after the grace, on its own.
#pragma once

#include <sys/types.h>

#include <chrono>
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

    // Throws std::system_error when fork/socketpair fail.
    struct Watchdog {
        std::chrono::steady_clock::time_point deadline;  // SIGTERM the group then
        std::chrono::nanoseconds grace;                  // SIGKILL this long after
    };
    void spawn(const std::string& path, const std::vector<std::string>& argv,
               const std::vector<std::string>& env, Watchdog watchdog);
    // Moves the watchdog's deadline (no-op when unchanged or not running).
    void extend(std::chrono::steady_clock::time_point deadline);

    bool spawned() const { return pid_ > 0; }
    pid_t pgid() const { return pid_; }
    bool running() const { return pid_ > 0 && !status_; }
    int fd() const { return running() ? link_ : -1; }  // readable: COMMAND ended or supervisor died
    void signal_group(int sig) const;                  // kill(-pgid, sig) while running
    // Call when fd() is readable: COMMAND's wait status (SIGKILL if the supervisor died first).
    int collect();
    std::optional<int> status() const { return status_; }

  private:
    pid_t pid_ = -1;  // supervisor = process group id
    int link_ = -1;
    std::optional<int> status_;
    std::chrono::steady_clock::time_point sent_deadline_{};
};

// Shell convention: exit code, or 128+N for death by signal N.
int exit_code_of(int wait_status);

}  // namespace singleton_lock::cli
