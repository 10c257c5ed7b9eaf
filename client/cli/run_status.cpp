#include "run_status.hpp"

#include <cmath>
#include <cstdio>

namespace singleton_lock::cli {

namespace {

// Upper bounds of the heartbeat histogram's buckets, in seconds (then +Inf).
constexpr double kBounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};

std::string escaped_label(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return "name=\"" + out + "\"";
}

std::string number(double v) {
    if (std::isnan(v)) return "NaN";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

std::string metric(const char* name, const char* type, const char* help, const std::string& labels,
                   const std::string& value) {
    std::string s =
        std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name;
    if (!labels.empty()) s += "{" + labels + "}";
    return s + " " + value + "\n";
}

}  // namespace

RunStatus::RunStatus(std::string name, Duration contact_window, Duration stuck_after)
    : name_label_(escaped_label(name)),
      contact_window_ns_(
          std::chrono::duration_cast<std::chrono::nanoseconds>(contact_window).count()),
      stuck_after_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(stuck_after).count()),
      last_tick_ns_(now_ns()) {}

std::int64_t RunStatus::now_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

void RunStatus::tick() { last_tick_ns_ = now_ns(); }

void RunStatus::set_leader(bool leader, std::int64_t token) {
    if (leader_.exchange(leader) != leader && leader) {
        ++transitions_;
        last_heartbeat_ns_ = now_ns();  // the acquire (and bind) just confirmed it
    }
    token_ = leader ? token : 0;
}

void RunStatus::contact(Clock::time_point when) {
    last_contact_ns_ =
        std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
}

void RunStatus::heartbeat(std::chrono::microseconds round_trip) {
    last_heartbeat_ns_ = now_ns();
    const double s = std::chrono::duration<double>(round_trip).count();
    std::lock_guard<std::mutex> lock(histogram_mutex_);
    int i = 0;
    while (i < buckets - 1 && s > kBounds[i]) ++i;
    ++bucket_counts_[i];
    ++heartbeat_count_;
    heartbeat_sum_seconds_ += s;
}

void RunStatus::database_error() { ++database_errors_; }

bool RunStatus::alive() const { return now_ns() - last_tick_ns_ <= stuck_after_ns_; }

bool RunStatus::leader() const { return leader_; }

RunStatus::Health RunStatus::health() const {
    if (leader_) return Health::leader;
    const std::int64_t contact = last_contact_ns_;
    return contact != 0 && now_ns() - contact <= contact_window_ns_ ? Health::standby
                                                                    : Health::unreachable;
}

std::string RunStatus::histogram() const {
    const char* n = "singleton_lock_heartbeat_duration_seconds";
    std::string s = std::string("# HELP ") + n +
                    " Round trip of confirmed heartbeats (sent -> reply).\n# TYPE " + n +
                    " histogram\n";
    std::lock_guard<std::mutex> lock(histogram_mutex_);
    std::uint64_t cumulative = 0;
    for (int i = 0; i < buckets; ++i) {
        cumulative += bucket_counts_[i];
        const std::string le = i < buckets - 1 ? number(kBounds[i]) : "+Inf";
        s += std::string(n) + "_bucket{" + name_label_ + ",le=\"" + le + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    s += std::string(n) + "_sum{" + name_label_ + "} " + number(heartbeat_sum_seconds_) + "\n";
    s += std::string(n) + "_count{" + name_label_ + "} " + std::to_string(heartbeat_count_) + "\n";
    return s;
}

std::string RunStatus::metrics() const {
    const bool lead = leader_;
    const std::int64_t beat = last_heartbeat_ns_;
    const double age = lead && beat != 0 ? static_cast<double>(now_ns() - beat) / 1e9 : NAN;
    std::string s;
    s += metric("singleton_lock_up", "gauge",
                "1 while leading, or contending as a standby that reached the database recently.",
                name_label_, health() == Health::unreachable ? "0" : "1");
    s += metric("singleton_lock_leader", "gauge", "1 while this instance holds the lease.",
                name_label_, lead ? "1" : "0");
    s += metric("singleton_lock_token", "gauge",
                "Fencing token of the current tenure (0 when not leading).", name_label_,
                std::to_string(lead ? token_.load() : 0));
    s += metric("singleton_lock_transitions_total", "counter",
                "Tenures this instance started (times it became leader).", name_label_,
                std::to_string(transitions_.load()));
    s += histogram();
    s += metric("singleton_lock_last_heartbeat_age_seconds", "gauge",
                "Seconds since the lease was last confirmed (NaN when not leading).", name_label_,
                number(age));
    s += metric("singleton_lock_database_errors_total", "counter",
                "Failed database calls and broken connections.", name_label_,
                std::to_string(database_errors_.load()));
    return s;
}

}  // namespace singleton_lock::cli
