// One step of the elector: socket readiness and replies dispatched by phase,
// then the timers; and what to poll for, until when.
#include <algorithm>

#include "elector_impl.hpp"

namespace singleton_lock {

using policy::Clock;

void Elector::Impl::step(const pollfd* fds, int count) {
    if (is_terminal(state) || phase == Phase::idle) return;
    // The descriptors as polled: handling one session may close or reopen the other.
    const int main_fd = main.fd(), second_fd = second.fd();
    for (int i = 0; i < count && !is_terminal(state); ++i) {
        if (fds[i].revents == 0 || fds[i].fd < 0) continue;
        if (fds[i].fd == main_fd && main.fd() == main_fd)
            io_all(main, fds[i].revents);
        else if (fds[i].fd == second_fd && second.fd() == second_fd)
            io_all(second, fds[i].revents);
    }
    if (!is_terminal(state)) timers();
}

// The socket's readiness, then a reply libpq already read behind the first one
// (a release queued behind the watch: both can arrive in one read).
void Elector::Impl::io_all(Session& s, short revents) {
    guarded(s, [&] { io(s, revents); });
    for (int more = 0; more < 2 && !is_terminal(state) && s.reply_buffered(); ++more)
        guarded(s, [&] { io(s, POLLIN); });
}

void Elector::Impl::io(Session& s, short revents) {
    const Session::Event event = s.on_ready(revents);
    if (&s == &main) notifications();
    // A release waiting for the server to begin answering the watch (see queue_behind_watch).
    if (phase == Phase::releasing && release_on == nullptr && watching == &s && s.can_send_behind())
        try_release();
    if (event == Session::Event::connected) {
        if (phase == Phase::connecting) on_connected(s);
        if (phase == Phase::releasing) try_release();
    } else if (event == Session::Event::replied) {
        last_contact = Clock::now();
        on_reply(s, s.take_result());
    }
}

void Elector::Impl::on_reply(Session& s, const pq::Result& r) {
    reconnect.working();
    if (watching == &s) {
        watching = nullptr;
        on_watch_reply(r);
        return;
    }
    if (&s == &second && warming_watch) return on_watch_warmed(nullptr);
    const bool on_main = &s == &main;
    switch (phase) {
        case Phase::connecting:
            on_warmed_up();  // the second session's first call
            return;
        case Phase::listen:
            send_acquire();
            return;
        case Phase::acquire:
            on_acquire_reply(r);
            return;
        case Phase::binding:
            on_main ? on_confirm_reply(r) : on_bind_reply(r);
            return;
        case Phase::heartbeat:
            on_heartbeat_reply(r);
            return;
        case Phase::releasing:
            if (release_on == &s) on_release_reply(r);
            return;
        default:
            return;  // e.g. a heartbeat's late reply after the loss
    }
}

void Elector::Impl::on_error(Session& s, const std::exception& e) {
    if (watching == &s) {
        watching = nullptr;
        if (dynamic_cast<const ConnectionError*>(&e) == nullptr) {
            on_watch_error(s, e);
            return;
        }
        watch_cancelled = false;  // a broken session: the phase's business
    }
    if (&s == &second && warming_watch) {
        if (dynamic_cast<const ConnectionError*>(&e) == nullptr) return on_watch_warmed(&e);
        warming_watch = false;  // a broken session: the phase's business
    }
    if (ev.on_database_error) ev.on_database_error(e.what());
    switch (phase) {
        case Phase::backoff:
        case Phase::connecting:
        case Phase::listen:
        case Phase::acquire:
        case Phase::binding:
            on_standby_error(s, e);
            return;
        case Phase::lead:
        case Phase::heartbeat:
            on_leader_error(s, e);
            return;
        case Phase::stepping_down:
            // A broken session is done for (the release will go out on another
            // one); a live one stays open: the lease must stay bound until the
            // work has stopped.
            if (dynamic_cast<const ConnectionError*>(&e) != nullptr) s.close();
            return;
        case Phase::releasing:
            on_release_error(s, e);
            return;
        case Phase::idle:
        case Phase::done:
            return;
    }
}

void Elector::Impl::timers() {
    const auto now = Clock::now();
    switch (phase) {
        case Phase::backoff:
            if (policy::wait_ran_out(now, wait_until)) {
                finish(State::wait_expired);
                if (ev.on_wait_expired) ev.on_wait_expired();
            } else if (now >= due) {
                guarded(main, [&] { begin_connect(); });
            }
            return;
        case Phase::connecting:
        case Phase::listen:
        case Phase::acquire:
        case Phase::binding:
        case Phase::releasing:
            check_deadlines(now);
            if (phase == Phase::releasing) release_timers(now);
            return;
        case Phase::lead:
        case Phase::heartbeat:
            guarded(main, [&] { leader_timers(now); });
            return;
        default:
            return;
    }
}

void Elector::Impl::check_deadlines(TimePoint now) {
    guarded(main, [&] { main.check_deadline(now); });
    if (!is_terminal(state)) guarded(second, [&] { second.check_deadline(now); });
}

// When maybe_watch() will send a watch that waits out a retry delay.
Elector::Impl::TimePoint Elector::Impl::watch_wakeup() const {
    if (watching != nullptr || !watch_supported || step_down || watch_retry_at == TimePoint{})
        return TimePoint::max();
    return watch_retry_at;
}

int Elector::Impl::pollfds(pollfd* out) const {
    int n = 0;
    if (phase == Phase::done) return 0;  // (sessions kept after a release are not polled)
    for (const Session* s : {&main, &second})
        if (s->fd() >= 0) out[n++] = pollfd{s->fd(), s->events(), 0};
    return n;
}

Elector::Impl::TimePoint Elector::Impl::next_wakeup() const {
    const TimePoint sessions = std::min(main.deadline(), second.deadline());
    switch (phase) {
        case Phase::backoff:
            return wait_until ? std::min(due, *wait_until) : due;
        case Phase::connecting:
        case Phase::listen:
        case Phase::acquire:
        case Phase::binding:
            return sessions;
        case Phase::lead:
            return std::min({watching == &main ? TimePoint::max() : next_heartbeat,
                             main.idle() ? notified_check : TimePoint::max(),
                             timer.step_down_at(), watch_wakeup()});
        case Phase::heartbeat:
            return std::min(timer.step_down_at(), watch_wakeup());
        case Phase::releasing:
            return std::min({due, retry_at, sessions, release_yield_by});
        default:
            return TimePoint::max();
    }
}

}  // namespace singleton_lock
