// The leader's watch (extension 1.1): a singleton_watch call kept in flight on
// the second session (idle otherwise), or on the main session between
// heartbeats. It returns at once when a standby of higher priority asks for
// the lease (step_down) or when the lease ends (lost: force release, pause,
// takeover), else when its wait runs out (held), and is then sent again.
// Nothing here waits for it: the deadline rule and the heartbeats go on beside it.
#include "elector_impl.hpp"

namespace singleton_lock {

using policy::Clock;

namespace {
// How long a release queued behind the watch waits for the server to end the
// watch before a cancel request does (the Python library's YIELD_WITHIN).
constexpr Duration kWatchYieldWithin{200};
}  // namespace

void Elector::Impl::maybe_watch(TimePoint now) {
    if (!opt.watch || !watch_supported || step_down || watching != nullptr) return;
    if (stop_pending.load()) return;  // the release comes next: a watch would only delay it
    if ((phase != Phase::lead && phase != Phase::heartbeat) || now < watch_retry_at) return;
    Session& s = watch_session();
    if (!s.idle()) return;
    Duration wait = policy::within_statement_timeout(timing.watch_wait, statement_timeout);
    if (&s == &main) {  // one session: watch until the next heartbeat is due
        if (phase != Phase::lead || notified_check != TimePoint::max()) return;
        const auto until_beat = std::chrono::duration_cast<Duration>(next_heartbeat - now);
        if (until_beat < Duration(20)) return;  // the heartbeat first
        wait = std::min(wait, until_beat);
    }
    guarded(s, [&] {
        s.send_yielding(sql.watch, {opt.name, std::to_string(token), interval_literal(wait)},
                        now + wait + timing.reply_slack);
        watching = &s;
    });
}

void Elector::Impl::on_watch_reply(const pq::Result& r) {
    watch_cancelled = false;  // (if we cancelled it, it returned before the cancel took effect)
    if (phase == Phase::releasing) {
        if (release_on == nullptr) guarded(main, [&] { try_release(); });  // it waited for this
        return;
    }
    if (phase != Phase::lead && phase != Phase::heartbeat) return;
    const std::string outcome = r.rows() == 1 ? r.text(0, 0) : "";
    if (outcome == "lost") {
        lose(LossReason::revoked,
             "singleton_watch: the lease is no longer held with our token (force release, pause "
             "or takeover)");
    } else if (outcome == "step_down" && !step_down) {
        step_down = true;
        if (ev.on_step_down_requested) ev.on_step_down_requested();
    }
    // "held": the wait ran out; the next watch goes out from the timers.
}

// Server errors only (a broken session is the phase's business).
void Elector::Impl::on_watch_error(Session& s, const std::exception& e) {
    const bool ours = watch_cancelled;  // our own cancel, to send a release on this session
    watch_cancelled = false;
    if (phase == Phase::releasing && release_on == nullptr)
        guarded(main, [&] { try_release(); });  // a release waiting for this session
    if (ours) return;
    if (ev.on_database_error) ev.on_database_error(e.what());
    if (disable_watch_if_unsupported(e)) return;
    (void)s;
    watch_retry_at = Clock::now() + timing.heartbeat_retry;  // transient (a statement_timeout, ...)
}

bool Elector::Impl::disable_watch_if_unsupported(const std::exception& e) {
    if (!dynamic_cast<const ExtensionMissingError*>(&e) &&
        !dynamic_cast<const PermissionDeniedError*>(&e))
        return false;
    watch_supported = false;  // extension 1.0, or no EXECUTE on singleton_watch
    if (ev.on_warning)
        ev.on_warning(std::string("cannot watch the lease (") + e.what() +
                      "): step-down requests are not noticed, a force release or pause only at "
                      "the next heartbeat");
    return true;
}

// A session busy with nothing but our watch takes the release behind it: the
// server ends the watch ('held') as soon as the release arrives, so no cancel
// request (a new connection, and a process forked in the server: tens of ms on
// a busy machine) is needed to get the session back.
// Sent before the server has begun to answer the watch, the release could
// arrive in the server's read of the watch and go unnoticed: until then it
// waits (try_release is called again when the server answers).
bool Elector::Impl::queue_behind_watch(Session& s, const pq::Params& args) {
    if (watching != &s || watch_cancelled) return false;
    if (release_yield_by == TimePoint::max()) release_yield_by = Clock::now() + kWatchYieldWithin;
    if (s.awaiting_first_answer()) return true;
    if (!s.can_send_behind()) return false;
    s.send_behind(sql.release, args, due);
    release_on = &s;
    return true;
}

// The watch did not end within kWatchYieldWithin of the release being asked
// for (the server never answered, read both at once, or is a build older than
// that): cancel it; a release not yet queued follows once it has ended.
void Elector::Impl::hurry_watch(TimePoint now) {
    if (now < release_yield_by) return;
    release_yield_by = TimePoint::max();
    if (watching == nullptr || watch_cancelled) return;
    if (release_on != nullptr && release_on != watching) return;
    watch_cancelled = true;
    cancelled_for_release = true;
    watching->cancel();
}

// A session busy with nothing but our watch (and nothing queued behind it) can
// send a release once the watch is cancelled (try_release is called again when
// it returns).
bool Elector::Impl::free_for_release(Session& s) {
    if (watching != &s) return false;
    if (!watch_cancelled) {
        watch_cancelled = true;
        cancelled_for_release = true;
        s.cancel();
    }
    return true;
}

}  // namespace singleton_lock
