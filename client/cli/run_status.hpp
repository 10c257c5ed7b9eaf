// What `singleton-lock run` is doing, written by its loop and read by the
// health endpoint's thread: liveness, leadership, database contact, and the
// Prometheus metrics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "health_endpoint.hpp"
#include "singleton_lock/duration.hpp"

namespace singleton_lock::cli {

class RunStatus final : public HealthSource {
  public:
    using Clock = std::chrono::steady_clock;

    // contact_window: how recently a standby must have heard from the database
    // to count as healthy. stuck_after: the loop counts as stuck when it has
    // not gone round for this long.
    RunStatus(std::string name, Duration contact_window, Duration stuck_after);

    // --- the loop's thread
    void tick();  // the loop went round
    void set_leader(bool leader, std::int64_t token);
    void contact(Clock::time_point when);  // a reply (or connection) from the database
    void heartbeat(std::chrono::microseconds round_trip);  // a confirmed heartbeat
    void database_error();

    // --- any thread
    bool alive() const override;           // /livez
    bool leader() const override;          // /readyz, /leader
    Health health() const override;        // /healthz
    std::string metrics() const override;  // /metrics, Prometheus text format 0.0.4

  private:
    static constexpr int buckets = 12;
    std::int64_t now_ns() const;
    std::string histogram() const;

    const std::string name_label_;  // name="...", escaped
    const std::int64_t contact_window_ns_;
    const std::int64_t stuck_after_ns_;
    std::atomic<std::int64_t> last_tick_ns_;
    std::atomic<std::int64_t> last_contact_ns_{0};
    std::atomic<std::int64_t> last_heartbeat_ns_{0};
    std::atomic<bool> leader_{false};
    std::atomic<std::int64_t> token_{0};
    std::atomic<std::uint64_t> transitions_{0};
    std::atomic<std::uint64_t> database_errors_{0};
    mutable std::mutex histogram_mutex_;
    std::uint64_t bucket_counts_[buckets] = {};  // cumulative counts are computed when read
    std::uint64_t heartbeat_count_ = 0;
    double heartbeat_sum_seconds_ = 0;
};

}  // namespace singleton_lock::cli
