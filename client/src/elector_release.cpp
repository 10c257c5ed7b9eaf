// Releasing the lease: over the main session if it can still send, else over
// the second one, else over a new connection (the token authorizes a release
// from any session: after a server restart the lease waits for it, or for
// its ttl), retried until the release timeout.
#include "elector_impl.hpp"

namespace singleton_lock {

using policy::Clock;

void Elector::Impl::release() {
    switch (phase) {
        case Phase::lead:
        case Phase::stepping_down:
            guarded(main, [&] { begin_release(); });
            return;
        case Phase::heartbeat:
            release_requested = true;  // sent when the heartbeat's reply arrives
            return;
        case Phase::releasing:
        case Phase::done:
            return;
        default:
            stop();
    }
}

void Elector::Impl::begin_release() {
    release_requested = false;
    phase = Phase::releasing;
    state = State::releasing;
    due = Clock::now() + timing.release_timeout;
    retry_at = TimePoint::max();
    release_on = nullptr;
    release_yield_by = TimePoint::max();
    cancelled_for_release = false;
    release_backoff.reset();
    try_release();
}

void Elector::Impl::try_release() {
    const pq::Params args{opt.name, std::to_string(token)};
    for (Session* s : {&main, &second}) {
        if (s->idle()) {
            s->send(sql.release, args, due);
            release_on = s;
            return;
        }
    }
    // A session busy with nothing but the watch: the release is queued behind
    // it (the server then ends the watch), else it follows a cancel of the watch.
    if (queue_behind_watch(main, args) || queue_behind_watch(second, args)) return;
    if (free_for_release(main) || free_for_release(second)) return;
    if (main.status() == Session::Status::connecting) return;
    // Neither session can send (broken, or a heartbeat hangs): a new connection.
    main.connect(params, host_timeout);  // (the release's own deadline bounds it all)
}

void Elector::Impl::on_release_reply(const pq::Result& r) {
    const bool ok = r.rows() == 1 && r.text(0, 0) == "t";
    // Released: the sessions may close later (stop(), the destructor), so that
    // their backends' exits do not compete for the CPU with the next leader's
    // start-up (measured: several ms of a handover on 2 busy cores).
    finish(was_lost ? State::lost : State::released, /*close_sessions=*/!ok);
    if (ev.on_released) ev.on_released(ok);
}

void Elector::Impl::on_release_error(Session& s, const std::exception& e) {
    if (release_on == &s && cancelled_for_release &&
        dynamic_cast<const QueryCanceledError*>(&e) != nullptr) {
        // Our cancel of the watch came after the watch had ended, and hit the
        // release instead: it rolled back; send it again (the session is idle).
        cancelled_for_release = false;
        release_on = nullptr;
        guarded(main, [&] { try_release(); });
        return;
    }
    s.close();
    if (release_on != nullptr && release_on != &s) return;  // the release is out on the other one
    release_on = nullptr;
    if (dynamic_cast<const ConnectionError*>(&e) == nullptr) {  // the server refused it
        finish(was_lost ? State::lost : State::released);
        if (ev.on_released) ev.on_released(false);
    } else if (main.idle() || second.idle()) {
        guarded(main, [&] { try_release(); });  // the other session can send it now
    } else {
        const Duration delay = release_backoff.next();
        retry_at = std::min(due, Clock::now() + delay);
        if (ev.on_retry) ev.on_retry(e.what(), delay);
    }
}

void Elector::Impl::release_timers(TimePoint now) {
    hurry_watch(now);
    if (now >= due) {
        finish(was_lost ? State::lost : State::released);
        if (ev.on_released) ev.on_released(false);
        return;
    }
    if (now >= retry_at) {
        retry_at = TimePoint::max();
        guarded(main, [&] { try_release(); });
    }
}

void Elector::Impl::finish(State s, bool close_sessions) {
    if (close_sessions) close_all();
    phase = Phase::done;
    state = s;
    token = 0;
}

void Elector::Impl::close_all() {
    if (watching != nullptr) watching->abandon();  // (no cancel's connection and fork in the server)
    main.close();  // cancels what is still in flight
    second.close();
    watching = nullptr;
    watch_cancelled = false;
    warming_watch = false;
}

void Elector::Impl::stop() {
    if (phase == Phase::done) return close_all();  // (sessions kept after a release)
    finish(State::stopped);
}

}  // namespace singleton_lock
