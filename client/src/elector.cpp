// The Elector's public face: names, construction, the blocking run() loop.
// The state machine itself: elector_impl.hpp.
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
#include <thread>

#include "elector_impl.hpp"
#include "kerberos_signs.hpp"

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
        case State::stepping_down:
            return "stepping_down";
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
        case LossReason::revoked:
            return "the server ended the lease";
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

ElectorOptions resolved(ElectorOptions o, const Timing& t) {
    if (o.name.empty()) throw UsageError("the lease name must not be empty");
    policy::check_label("the lease name", o.name);
    if (o.holder.empty()) o.holder = default_holder_id();
    policy::check_label("the holder id", o.holder);
    o.grace = t.grace;
    return o;
}

double uniform01(std::minstd_rand& rng) {
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

Elector::Impl::Impl(ElectorOptions o, ElectorEvents e)
    : timing(make_timing(o.ttl, o.grace)),
      opt(resolved(std::move(o), timing)),
      ev(std::move(e)),
      sql(opt.schema),
      params(opt.dsn,
             policy::connection_defaults(timing, kerberos::possible(kerberos::this_host()))),
      host_timeout(params.connect_timeout().value_or(timing.connect_timeout)),
      rng(std::random_device{}()),
      reconnect({opt.backoff_initial, opt.backoff_max, opt.failover_backoff_max,
                 opt.failover_window},
                [this] { return uniform01(rng); }),
      release_backoff(Duration(50), Duration(1000), [this] { return uniform01(rng); }),
      stop_fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      use_second(opt.second_session),
      timer(timing) {}

Elector::Impl::~Impl() {
    close_all();
    if (stop_fd >= 0) ::close(stop_fd);
}

namespace {

// How long run() keeps the sessions after a confirmed release (Elector::release()).
constexpr Duration kCloseAfterRelease{30};

int timeout_ms(policy::TimePoint wake) {
    if (wake == policy::TimePoint::max()) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
}

}  // namespace

State Elector::Impl::run() {
    start();
    bool stop_seen = false, stepped_aside = false;
    while (!is_terminal(state)) {
        if (state == State::stepping_down) {  // on_lost has returned: the work has stopped
            release();
            continue;
        }
        if (step_down && !stepped_aside && state == State::leader) {
            stepped_aside = true;  // on_step_down_requested has returned: hand the lease over
            release();
            continue;
        }
        pollfd fds[max_pollfds + 1];
        const int n = pollfds(fds);
        fds[n] = pollfd{stop_fd, POLLIN, 0};
        if (::poll(fds, static_cast<nfds_t>(n + 1), timeout_ms(next_wakeup())) < 0 &&
            errno != EINTR)
            throw Error("poll failed");
        if (fds[n].revents & POLLIN) {
            eventfd_t v;
            (void)eventfd_read(stop_fd, &v);
            if (!stop_seen) {
                stop_seen = true;
                release();
            }
            if (is_terminal(state)) break;
        }
        step(fds, n);
    }
    if (state == State::released) {  // the sessions were kept: see Elector::release()
        std::this_thread::sleep_for(kCloseAfterRelease);
        close_all();
    }
    return state;
}

Elector::Elector(ElectorOptions options, ElectorEvents events)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(events))) {}
Elector::~Elector() = default;

const ElectorOptions& Elector::options() const { return impl_->opt; }
const Timing& Elector::timing() const { return impl_->timing; }
State Elector::state() const { return impl_->state; }
std::int64_t Elector::token() const { return impl_->state == State::leader ? impl_->token : 0; }
bool Elector::step_down_requested() const { return impl_->step_down; }
std::chrono::steady_clock::time_point Elector::step_down_at() const {
    return impl_->state == State::leader && impl_->timer.valid() ? impl_->timer.step_down_at()
                                                                 : policy::TimePoint::max();
}
std::chrono::steady_clock::time_point Elector::last_contact() const { return impl_->last_contact; }
std::vector<int> Elector::session_sockets() const {
    std::vector<int> fds;
    if (impl_->state != State::leader && impl_->state != State::stepping_down) return fds;
    for (const Session* s : {&impl_->main, &impl_->second})
        if (s->fd() >= 0) fds.push_back(s->fd());
    return fds;
}
void Elector::start() { impl_->start(); }
int Elector::pollfds(pollfd* out) const { return impl_->pollfds(out); }
std::chrono::steady_clock::time_point Elector::next_wakeup() const { return impl_->next_wakeup(); }
void Elector::step(const pollfd* fds, int count) { impl_->step(fds, count); }
void Elector::release() { impl_->release(); }
void Elector::stop() { impl_->stop(); }
State Elector::run() { return impl_->run(); }
void Elector::request_stop() noexcept {
    impl_->stop_pending.store(true);  // (lock-free: async-signal-safe)
    if (impl_->stop_fd >= 0) (void)eventfd_write(impl_->stop_fd, 1);
}

}  // namespace singleton_lock
