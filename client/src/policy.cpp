#include "policy.hpp"

#include <algorithm>
#include <string_view>

#include "singleton_lock/errors.hpp"

namespace singleton_lock {

using std::chrono::milliseconds;
using std::chrono::seconds;

Timing make_timing(Duration ttl, std::optional<Duration> grace) {
    if (ttl < min_ttl)
        throw UsageError("the ttl must be at least " + format_duration(min_ttl) + " (got " +
                         format_duration(ttl) + ")");
    Timing t{};
    t.ttl = ttl;
    t.grace = grace.value_or(ttl / 4);
    if (t.grace < Duration::zero()) throw UsageError("the grace must not be negative");
    // 2 * grace < ttl, i.e. grace < ttl/2 without rounding down ttl/2.
    if (2 * t.grace >= ttl)
        throw UsageError("the grace (" + format_duration(t.grace) +
                         ") must be less than ttl/2 (ttl " + format_duration(ttl) + ")");
    t.heartbeat_interval = ttl / 3;
    t.safety_margin = std::min<Duration>(ttl / 10, seconds(1));
    t.heartbeat_retry = std::clamp<Duration>(ttl / 20, milliseconds(20), seconds(1));
    // A standby waits in slices short enough that a lease handed over at the
    // very end of one still leaves a full heartbeat interval before the
    // step-down point when counted from the slice's send time: it leads at
    // once, without a confirming round trip (lead_before_confirmation). A
    // release that lands between two slices (no registered waiter to hand the
    // lease to: the standby takes it with a commit of its own) stays rare: the
    // next slice goes out as soon as a reply arrives, a gap of one round trip.
    const Duration room = t.ttl - t.grace - t.safety_margin - t.heartbeat_interval;
    t.wait_slice_max = std::clamp<Duration>(room * 3 / 4, milliseconds(10), seconds(5));
    // The leader's watch: re-issued at once when it runs out, so its length
    // only bounds how long a dead second session can go unnoticed.
    t.watch_wait = std::clamp<Duration>(ttl / 2, milliseconds(250), seconds(5));
    t.reply_slack = std::clamp<Duration>(ttl / 2, seconds(1), seconds(10));
    t.connect_timeout = std::clamp<Duration>(ttl / 2, seconds(2), seconds(30));
    // Long enough to reconnect through a server restart: until the release
    // arrives, the restarted server keeps the lease for its ttl.
    t.release_timeout = std::clamp<Duration>(ttl, seconds(1), seconds(30));
    t.watchdog_slack = t.safety_margin / 2;
    return t;
}

}  // namespace singleton_lock

namespace singleton_lock::policy {

using std::chrono::milliseconds;
using std::chrono::seconds;

void LeaseTimer::confirmed(TimePoint sent) {
    if (!has_ || sent > sent_) sent_ = sent;
    has_ = true;
}

bool lead_before_confirmation(const Timing& timing, TimePoint acquire_sent, TimePoint now) {
    LeaseTimer from_send(timing);
    from_send.confirmed(acquire_sent);
    return now + timing.heartbeat_interval < from_send.step_down_at();
}

Backoff::Backoff(Duration initial, Duration max, Random random)
    : initial_(std::max<Duration>(initial, milliseconds(1))),
      max_(std::max(max, initial_)),
      random_(std::move(random)) {}

Duration Backoff::next(Duration cap) {
    cap = std::max(cap, initial_);
    Duration base = initial_;
    for (int i = 0; i < attempt_ && base < cap; ++i) base *= 2;
    base = std::min(base, cap);
    if (attempt_ < 64) ++attempt_;
    double r = random_ ? random_() : 0.0;
    r = std::clamp(r, 0.0, 1.0);
    const auto half = base.count() / 2;
    return Duration(half +
                    static_cast<Duration::rep>(r * static_cast<double>(base.count() - half)));
}

Reconnect::Reconnect(ReconnectLimits limits, Backoff::Random random)
    : limits_(limits), backoff_(limits.initial, limits.max, std::move(random)) {}

void Reconnect::working() {
    working_ = true;
    backoff_.reset();
}

Duration Reconnect::next(TimePoint now, bool primary_missing) {
    if (working_) {
        working_ = false;
        lost_at_ = now;
        if (!immediate_at_ || now - *immediate_at_ >= limits_.max) {
            immediate_at_ = now;
            return Duration::zero();
        }
    }
    const bool failover =
        primary_missing || (lost_at_ && now - *lost_at_ < limits_.failover_window);
    return backoff_.next(failover ? limits_.failover_max : limits_.max);
}

namespace {

// A failed connection attempt has no SQLSTATE in libpq: only its text tells
// (English unless the program or the server set another language).
template <std::size_t N>
bool connect_failed_with(const std::exception& error, const char* const (&signs)[N]) {
    if (dynamic_cast<const ConnectionError*>(&error) == nullptr) return false;
    const std::string text = error.what();
    for (const char* sign : signs)
        if (text.find(sign) != std::string::npos) return true;
    return false;
}

}  // namespace

bool primary_missing(const std::exception& error) {
    if (const auto* server = dynamic_cast<const ServerError*>(&error))
        return server->sqlstate() == "25006";  // read_only_sql_transaction: a standby
    // libpq's own target_session_attrs refusals and the server's 57P03 start-up
    // refusals (in another language the failover window covers the case).
    static constexpr const char* kSigns[] = {
        "session is read-only",
        "server is in hot standby mode",
        "the database system is starting up",
        "the database system is in recovery mode",
        "the database system is not yet accepting connections",
        "the database system is not accepting connections",
        "the database system is shutting down",
    };
    return connect_failed_with(error, kSigns);
}

bool connection_limit(const std::exception& error) {
    static constexpr const char* kSigns[] = {"too many connections for",
                                             "sorry, too many clients already",
                                             "remaining connection slots are reserved"};
    return connect_failed_with(error, kSigns);
}

Duration wait_slice(const Timing& timing, TimePoint now, std::optional<TimePoint> wait_until) {
    if (!wait_until) return timing.wait_slice_max;
    if (now >= *wait_until) return Duration::zero();
    const auto left = std::chrono::duration_cast<Duration>(*wait_until - now);
    return std::min(left, timing.wait_slice_max);
}

Duration within_statement_timeout(Duration wait, Duration statement_timeout) {
    if (statement_timeout <= Duration::zero()) return wait;
    const Duration headroom = std::max<Duration>(statement_timeout / 5, milliseconds(50));
    const Duration longest = statement_timeout > 2 * headroom ? statement_timeout - headroom
                                                              : statement_timeout / 2;
    return std::min(wait, std::max(longest, Duration(1)));
}

bool wait_ran_out(TimePoint now, std::optional<TimePoint> wait_until) {
    return wait_until && now >= *wait_until;
}

TimePoint reply_deadline(const Timing& timing, TimePoint sent, Duration server_wait) {
    return sent + server_wait + timing.reply_slack;
}

std::vector<std::pair<std::string, std::string>> connection_defaults(const Timing& timing,
                                                                     bool kerberos_possible) {
    using std::chrono::duration_cast;
    const auto secs = [](Duration d) {
        return std::to_string(std::max<long long>(1, duration_cast<seconds>(d).count()));
    };
    std::vector<std::pair<std::string, std::string>> defaults = {
        {"connect_timeout", secs(timing.connect_timeout)},
        // Unacknowledged data for longer than this breaks the connection: a
        // standby notices a dead path and reconnects. The leader's deadline rule
        // does not depend on it.
        {"tcp_user_timeout",
         std::to_string(std::max<Duration>(timing.ttl / 2, seconds(1)).count())},
        {"keepalives", "1"},
        {"keepalives_idle", secs(timing.ttl / 3)},
        {"keepalives_interval", secs(timing.ttl / 10)},
        {"keepalives_count", "3"},
        // Lease names and holder ids are identities: the same bytes for every
        // client, whatever client_encoding the role or database sets (under
        // LATIN1, "zürich" from a UTF-8 command line would be another lease
        // than another client's "zürich").
        {"client_encoding", "UTF8"},
    };
    // (A probe that cannot find credentials here: kerberos_signs.hpp.)
    if (!kerberos_possible) defaults.emplace_back("gssencmode", "disable");
    return defaults;
}

namespace {

// The length of the UTF-8 sequence `text` starts with, 0 if it is none (an
// overlong form, a surrogate, beyond U+10FFFF, or cut short).
std::size_t utf8_sequence(std::string_view text) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(0);
    if (lead < 0x80) return 1;
    const std::size_t n = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3
                          : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
    if (n == 0 || text.size() < n) return 0;
    for (std::size_t i = 1; i < n; ++i)
        if ((byte(i) & 0xC0) != 0x80) return 0;
    const unsigned char second = byte(1);
    if ((lead == 0xE0 && second < 0xA0) || (lead == 0xED && second > 0x9F) ||
        (lead == 0xF0 && second < 0x90) || (lead == 0xF4 && second > 0x8F))
        return 0;
    return n;
}

// The code point of the valid UTF-8 sequence of length n at the start of text.
char32_t code_point(std::string_view text, std::size_t n) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    char32_t cp = n == 1 ? byte(0) : byte(0) & (0x7F >> n);
    for (std::size_t i = 1; i < n; ++i) cp = (cp << 6) | (byte(i) & 0x3F);
    return cp;
}

// The server's sets (extension/lease_rules.cpp): C0, DEL and C1 controls;
// Unicode's white space plus U+200B and U+FEFF.
bool is_control(char32_t cp) { return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0); }

bool is_white_space(char32_t cp) {
    static constexpr char32_t kSpaces[] = {0x20,   0x85,   0xA0,   0x1680, 0x2028,
                                           0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF};
    for (char32_t space : kSpaces)
        if (cp == space) return true;
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x2000 && cp <= 0x200B);
}

constexpr std::size_t kMaxLabelChars = 255;

}  // namespace

void check_label(const char* what, const std::string& text) {
    require_utf8(what, text);
    std::size_t chars = 0;
    bool only_space = true, control = false;
    for (std::string_view rest(text); !rest.empty(); ++chars) {
        const std::size_t n = utf8_sequence(rest);
        const char32_t cp = code_point(rest, n);
        control = control || is_control(cp);
        only_space = only_space && is_white_space(cp);
        rest.remove_prefix(n);
    }
    if (chars == 0 || chars > kMaxLabelChars)
        throw UsageError(std::string(what) + " must be 1 to " + std::to_string(kMaxLabelChars) +
                         " characters long (it has " + std::to_string(chars) + ")");
    if (control) throw UsageError(std::string(what) + " must not contain control characters");
    if (only_space) throw UsageError(std::string(what) + " must not be only white space");
}

void require_utf8(const char* what, const std::string& text) {
    std::string_view rest(text);
    while (!rest.empty()) {
        const std::size_t n = utf8_sequence(rest);
        if (n == 0)
            throw UsageError(std::string(what) + " must be valid UTF-8 (byte " +
                             std::to_string(text.size() - rest.size() + 1) + " is not)");
        rest.remove_prefix(n);
    }
}

Recovery recovery_for(const std::exception& error) {
    if (dynamic_cast<const ConnectionError*>(&error)) return Recovery::retry;
    if (dynamic_cast<const InvalidArgumentError*>(&error) ||
        dynamic_cast<const PermissionDeniedError*>(&error) ||
        dynamic_cast<const ExtensionMissingError*>(&error) ||
        dynamic_cast<const UsageError*>(&error))
        return Recovery::fatal;
    if (const auto* server = dynamic_cast<const ServerError*>(&error);
        server && server->sqlstate().rfind("42", 0) == 0)
        return Recovery::fatal;  // syntax error or access rule violation: a bug or a setup problem
    // Other server errors (shutdown in progress, too many connections,
    // serialization failures, statement_timeout, ...) are transient.
    return Recovery::retry;
}

}  // namespace singleton_lock::policy
