// The elector's I/O loop: a small state machine over one non-blocking libpq
// connection. Timing decisions come from policy.hpp; SQL from sql.hpp; error
// mapping from connection.cpp.
#include "singleton_lock/elector.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <random>

#include "connection.hpp"
#include "policy.hpp"
#include "sql.hpp"

namespace singleton_lock {

using policy::Clock;
using policy::TimePoint;

const char* to_string(State s) {
    switch (s) {
        case State::idle:
            return "idle";
        case State::connecting:
            return "connecting";
        case State::standby:
            return "standby";
        case State::leader:
            return "leader";
        case State::releasing:
            return "releasing";
        case State::released:
            return "released";
        case State::lost:
            return "lost";
        case State::wait_expired:
            return "wait_expired";
        case State::failed:
            return "failed";
        case State::stopped:
            return "stopped";
    }
    return "?";
}

bool is_terminal(State s) {
    return s == State::released || s == State::lost || s == State::wait_expired ||
           s == State::failed || s == State::stopped;
}

const char* to_string(LossReason r) {
    switch (r) {
        case LossReason::refused:
            return "heartbeat refused";
        case LossReason::deadline:
            return "no confirmed heartbeat before the deadline";
        case LossReason::connection_lost:
            return "connection lost";
    }
    return "?";
}

std::string default_holder_id() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown");
    unsigned char random[6] = {};
    if (getrandom(random, sizeof random, 0) != static_cast<ssize_t>(sizeof random)) {
        std::random_device rd;
        for (auto& b : random) b = static_cast<unsigned char>(rd());
    }
    char suffix[2 * sizeof random + 1] = {};
    for (std::size_t i = 0; i < sizeof random; ++i)
        std::snprintf(suffix + 2 * i, 3, "%02x", random[i]);
    return std::string(host) + ":" + std::to_string(getpid()) + ":" + suffix;
}

namespace {

ElectorOptions resolved(ElectorOptions o, const policy::Timing& t) {
    if (o.name.empty()) throw UsageError("the lease name must not be empty");
    if (o.holder.empty()) o.holder = default_holder_id();
    o.grace = t.grace;
    return o;
}

}  // namespace

struct Elector::Impl {
    enum class Phase {
        idle,
        backoff,
        connecting,
        listen,
        acquire,
        confirm,
        lead,
        heartbeat,
        release,
        done
    };

    Impl(ElectorOptions o, ElectorEvents e)
        : timing(policy::make_timing(o.ttl, o.grace)),
          opt(resolved(std::move(o), timing)),
          ev(std::move(e)),
          sql(opt.schema),
          params(opt.dsn, policy::connection_defaults(timing)),
          host_timeout(params.connect_timeout().value_or(timing.connect_timeout)),
          timer(timing),
          rng(std::random_device{}()),
          reconnect(
              {opt.backoff_initial, opt.backoff_max, opt.failover_backoff_max, opt.failover_window},
              [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); }) {
        stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    ~Impl() {
        if (stop_fd >= 0) ::close(stop_fd);
    }

    policy::Timing timing;
    ElectorOptions opt;
    ElectorEvents ev;
    Sql sql;
    pq::ConnectParams params;
    Duration host_timeout;  // per host of the DSN (libpq's non-blocking connect has none)
    policy::LeaseTimer timer;
    std::minstd_rand rng;
    policy::Reconnect reconnect;
    pq::Connection conn;

    Phase phase = Phase::idle;
    State state = State::idle;
    pq::Connection::Progress progress = pq::Connection::Progress::want_write;
    TimePoint due{};  // backoff: retry at; connecting: give up at; requests: reply deadline
    TimePoint sent_at{};
    std::optional<TimePoint> wait_until;
    bool first_attempt = true;
    bool waited = false;
    bool heartbeat_now = false;
    bool release_requested = false;
    TimePoint next_heartbeat{};
    std::int64_t token = 0;
    std::string seen_holder;
    bool seen_any = false;
    int stop_fd = -1;

    // --- transitions -----------------------------------------------------
    void start() {
        if (phase != Phase::idle) return;
        const auto now = Clock::now();
        if (opt.wait) wait_until = now + *opt.wait;
        guarded([&] { begin_connect(now); });
    }

    template <typename F>
    void guarded(F&& f) {
        try {
            f();
        } catch (const std::exception& e) {
            on_error(e);
        }
    }

    void begin_connect(TimePoint now) {
        state = State::connecting;
        phase = Phase::connecting;
        due = now + host_timeout;
        progress = pq::Connection::Progress::want_write;
        conn = pq::Connection::start(params);
    }

    void after_connect() {
        if (opt.listen) {
            send(Phase::listen, Sql::listen, {}, Duration::zero());
        } else {
            send_acquire();
        }
    }

    void send(Phase p, const std::string& text, const pq::Params& args, Duration server_wait) {
        sent_at = Clock::now();
        phase = p;
        due = policy::reply_deadline(timing, sent_at, server_wait);
        conn.send(text, args);
    }

    void send_acquire() {
        const auto now = Clock::now();
        const Duration slice =
            first_attempt ? Duration::zero() : policy::wait_slice(timing, now, wait_until);
        waited = slice > Duration::zero();
        send(Phase::acquire, sql.acquire,
             {opt.name, interval_literal(opt.ttl), opt.holder, interval_literal(slice)}, slice);
    }

    void send_heartbeat(Phase p) {
        heartbeat_now = false;
        send(p, sql.heartbeat, {opt.name, std::to_string(token), interval_literal(opt.ttl)},
             Duration::zero());
    }

    void send_release() {
        release_requested = false;
        state = State::releasing;
        send(Phase::release, sql.release, {opt.name, std::to_string(token)}, Duration::zero());
        due = Clock::now() + timing.release_timeout;
    }

    void become_leader(const std::string& expires_at) {
        phase = Phase::lead;
        state = State::leader;
        next_heartbeat = timer.next_heartbeat_at();
        if (ev.on_leader) ev.on_leader(LeaseInfo{opt.name, opt.holder, token, expires_at});
    }

    void finish(State s) {
        conn.close();
        phase = Phase::done;
        state = s;
        token = 0;
    }

    void lose(LossReason reason, const std::string& detail) {
        finish(State::lost);  // closing the connection also ends the session binding
        if (ev.on_lost) ev.on_lost(reason, detail);
    }

    // --- replies -----------------------------------------------------------
    void on_reply(const pq::Result& r) {
        reconnect.working();
        switch (phase) {
            case Phase::listen:
                send_acquire();
                break;
            case Phase::acquire:
                on_acquire_reply(r);
                break;
            case Phase::confirm:
                if (r.rows() != 1 || r.is_null(0, 0)) {
                    // Lost between the waited acquire and its confirmation:
                    // nothing was started yet, so simply wait again.
                    token = 0;
                    send_acquire();
                } else {
                    timer.confirmed(sent_at);
                    become_leader(r.text(0, 0));
                }
                break;
            case Phase::heartbeat:
                if (r.rows() != 1 || r.is_null(0, 0)) {
                    lose(LossReason::refused, "singleton_heartbeat returned NULL");
                    return;
                }
                timer.confirmed(sent_at);
                phase = Phase::lead;
                next_heartbeat = timer.next_heartbeat_at();
                if (release_requested) send_release();
                break;
            case Phase::release: {
                const bool ok = r.rows() == 1 && r.text(0, 0) == "t";
                finish(State::released);
                if (ev.on_released) ev.on_released(ok);
                break;
            }
            default:
                break;
        }
    }

    void on_acquire_reply(const pq::Result& r) {
        if (r.rows() != 1) throw ServerError("singleton_acquire returned no row", "XX000");
        const bool acquired = r.text(0, 0) == "t";
        if (acquired) {
            token = std::stoll(r.text(0, 1));
            timer = policy::LeaseTimer(timing);
            if (!waited) {
                timer.confirmed(sent_at);
                become_leader(r.text(0, 3));
            } else if (policy::lead_before_confirmation(timing, sent_at, Clock::now())) {
                // Count from the acquire's send time; the confirming heartbeat
                // goes out at once and the count continues from it.
                timer.confirmed(sent_at);
                heartbeat_now = true;
                become_leader(r.text(0, 3));
            } else {
                // A wait can outlast the TTL: confirm first, count from the confirmation.
                send_heartbeat(Phase::confirm);
            }
            return;
        }
        first_attempt = false;
        const std::string holder = r.text(0, 2);
        state = State::standby;
        if (!seen_any || holder != seen_holder) {
            seen_any = true;
            seen_holder = holder;
            if (ev.on_standby) ev.on_standby(LeaseInfo{opt.name, holder, 0, r.text(0, 3)});
        }
        if (policy::wait_ran_out(Clock::now(), wait_until)) {
            finish(State::wait_expired);
            if (ev.on_wait_expired) ev.on_wait_expired();
            return;
        }
        send_acquire();
    }

    void on_error(const std::exception& e) {
        const auto now = Clock::now();
        const bool is_connection = dynamic_cast<const ConnectionError*>(&e) != nullptr;
        switch (phase) {
            case Phase::lead:
            case Phase::heartbeat:
                if (is_connection) {
                    lose(LossReason::connection_lost, e.what());
                } else if (policy::recovery_for(e) == policy::Recovery::fatal) {
                    lose(LossReason::refused, e.what());
                } else {
                    // A transient error: try again soon; the deadline rule still applies.
                    phase = Phase::lead;
                    next_heartbeat = now + timing.heartbeat_retry;
                    if (release_requested) guarded([&] { send_release(); });
                }
                return;
            case Phase::release:
                finish(State::released);
                if (ev.on_released) ev.on_released(false);
                return;
            case Phase::done:
                return;
            default:
                break;
        }
        conn.close();
        if (policy::recovery_for(e) == policy::Recovery::fatal) {
            finish(State::failed);
            if (ev.on_failed) ev.on_failed(e.what());
            return;
        }
        if (release_requested) {  // stop requested while (re)connecting
            finish(State::stopped);
            return;
        }
        const Duration delay = reconnect.next(now, policy::primary_missing(e));
        phase = Phase::backoff;
        state = State::connecting;
        due = now + delay;
        if (ev.on_retry) ev.on_retry(e.what(), delay);
    }

    // --- the step ------------------------------------------------------------
    void io(short revents) {
        if (revents == 0) return;
        switch (phase) {
            case Phase::connecting:
                progress = conn.advance();
                if (progress == pq::Connection::Progress::ready) after_connect();
                return;
            case Phase::listen:
            case Phase::acquire:
            case Phase::confirm:
            case Phase::heartbeat:
            case Phase::release:
                if (revents & POLLOUT) conn.flush();
                if (revents & (POLLIN | POLLERR | POLLHUP)) conn.read_input();
                notifications();
                if (auto r = conn.poll_result()) on_reply(*r);
                return;
            case Phase::lead:
                conn.read_input();  // detects a closed connection at once
                notifications();
                return;
            default:
                return;
        }
    }

    void notifications() {
        const int own = conn.backend_pid();
        for (const auto& [pid, payload] : conn.take_notifications()) {
            if (pid != own && payload == opt.name &&
                (phase == Phase::lead || phase == Phase::heartbeat))
                heartbeat_now = true;  // someone else changed our lease: check at once
        }
    }

    void timers() {
        const auto now = Clock::now();
        switch (phase) {
            case Phase::backoff:
                if (policy::wait_ran_out(now, wait_until)) {
                    finish(State::wait_expired);
                    if (ev.on_wait_expired) ev.on_wait_expired();
                } else if (now >= due) {
                    begin_connect(now);
                }
                return;
            case Phase::connecting:
                if (now >= due) {  // that host never answered: libpq's next one, if any
                    if (!conn.next_host())
                        throw ConnectionError("could not connect within " +
                                              format_duration(host_timeout));
                    due = now + host_timeout;
                    progress = pq::Connection::Progress::want_write;
                }
                return;
            case Phase::listen:
            case Phase::acquire:
            case Phase::confirm:
                if (now >= due) throw ConnectionError("no reply from the server in time");
                return;
            case Phase::release:
                if (now >= due) {
                    finish(State::released);
                    if (ev.on_released) ev.on_released(false);
                }
                return;
            case Phase::lead:
                if (timer.must_step_down(now)) {
                    lose(LossReason::deadline, "no heartbeat confirmed in time");
                } else if (heartbeat_now || now >= next_heartbeat) {
                    send_heartbeat(Phase::heartbeat);
                }
                return;
            case Phase::heartbeat:
                if (timer.must_step_down(now))
                    lose(LossReason::deadline, "heartbeat not confirmed in time");
                return;
            default:
                return;
        }
    }

    void step(short revents) {
        if (is_terminal(state) || phase == Phase::idle) return;
        guarded([&] { io(revents); });
        if (is_terminal(state)) return;
        guarded([&] { timers(); });
    }

    int fd() const {
        switch (phase) {
            case Phase::connecting:
            case Phase::listen:
            case Phase::acquire:
            case Phase::confirm:
            case Phase::lead:
            case Phase::heartbeat:
            case Phase::release:
                return conn.fd();
            default:
                return -1;
        }
    }

    short events() const {
        switch (phase) {
            case Phase::connecting:
                return progress == pq::Connection::Progress::want_read ? POLLIN : POLLOUT;
            case Phase::lead:
                return POLLIN;
            case Phase::listen:
            case Phase::acquire:
            case Phase::confirm:
            case Phase::heartbeat:
            case Phase::release:
                return static_cast<short>(POLLIN | (conn.wants_write() ? POLLOUT : 0));
            default:
                return 0;
        }
    }

    TimePoint next_wakeup() const {
        switch (phase) {
            case Phase::backoff:
                return wait_until ? std::min(due, *wait_until) : due;
            case Phase::connecting:
            case Phase::listen:
            case Phase::acquire:
            case Phase::confirm:
            case Phase::release:
                return due;
            case Phase::lead:
                return heartbeat_now ? Clock::now()
                                     : std::min(next_heartbeat, timer.step_down_at());
            case Phase::heartbeat:
                return timer.step_down_at();
            default:
                return TimePoint::max();
        }
    }

    void release() {
        switch (phase) {
            case Phase::lead:
                guarded([&] { send_release(); });
                return;
            case Phase::heartbeat:
                release_requested = true;  // sent when the heartbeat's reply arrives
                return;
            case Phase::release:
            case Phase::done:
                return;
            default:
                stop();
        }
    }

    void stop() {
        if (phase == Phase::done) return;
        if (conn.is_open() && conn.in_flight()) conn.cancel(std::chrono::milliseconds(200));
        finish(State::stopped);
    }

    State run() {
        start();
        bool stop_seen = false;
        while (!is_terminal(state)) {
            pollfd fds[2] = {{fd(), events(), 0}, {stop_fd, POLLIN, 0}};
            const auto wake = next_wakeup();
            int timeout = -1;
            if (wake != TimePoint::max()) {
                const auto left =
                    std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
                timeout = static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
            }
            if (::poll(fds, 2, timeout) < 0 && errno != EINTR) throw Error("poll failed");
            if (fds[1].revents & POLLIN) {
                eventfd_t v;
                (void)eventfd_read(stop_fd, &v);
                if (!stop_seen) {
                    stop_seen = true;
                    release();
                }
                if (is_terminal(state)) break;
            }
            step(fds[0].revents);
        }
        return state;
    }
};

Elector::Elector(ElectorOptions options, ElectorEvents events)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(events))) {}
Elector::~Elector() = default;

const ElectorOptions& Elector::options() const { return impl_->opt; }
State Elector::state() const { return impl_->state; }
std::int64_t Elector::token() const { return impl_->state == State::leader ? impl_->token : 0; }
std::chrono::steady_clock::time_point Elector::step_down_at() const {
    return impl_->state == State::leader && impl_->timer.valid() ? impl_->timer.step_down_at()
                                                                 : TimePoint::max();
}
void Elector::start() { impl_->start(); }
int Elector::fd() const { return impl_->fd(); }
short Elector::events() const { return impl_->events(); }
std::chrono::steady_clock::time_point Elector::next_wakeup() const { return impl_->next_wakeup(); }
void Elector::step(short revents) { impl_->step(revents); }
void Elector::release() { impl_->release(); }
void Elector::stop() { impl_->stop(); }
State Elector::run() { return impl_->run(); }
void Elector::request_stop() noexcept {
    if (impl_->stop_fd >= 0) (void)eventfd_write(impl_->stop_fd, 1);
}

}  // namespace singleton_lock
