// The leader side of the elector: heartbeats on the main session, the deadline
// rule, and the loss, which keeps the sessions (and so the lease) until the
// application has stopped its work and calls release().
#include "elector_impl.hpp"

namespace singleton_lock {

using policy::Clock;

void Elector::Impl::become_leader() {
    phase = Phase::lead;
    state = State::leader;
    next_heartbeat = timer.next_heartbeat_at();
    LeaseInfo info{opt.name, opt.holder, token, expires_at, {main.backend_pid()}};
    if (use_second) info.backend_pids.push_back(second.backend_pid());
    if (ev.on_leader) ev.on_leader(info);
}

void Elector::Impl::send_heartbeat() {
    notified_check = TimePoint::max();  // (this one checks whatever was notified)
    last_beat_sent = Clock::now();
    phase = Phase::heartbeat;
    // No reply deadline of its own: the deadline rule bounds it.
    main.send(sql.heartbeat, {opt.name, std::to_string(token), interval_literal(opt.ttl)},
              TimePoint::max());
}

void Elector::Impl::on_heartbeat_reply(const pq::Result& r) {
    if (r.rows() != 1 || r.is_null(0, 0)) {
        lose(LossReason::refused, "singleton_heartbeat returned NULL");
        return;
    }
    const auto now = Clock::now();
    timer.confirmed(main.sent_at());
    if (ev.on_heartbeat)
        ev.on_heartbeat(
            std::chrono::duration_cast<std::chrono::microseconds>(now - main.sent_at()));
    phase = Phase::lead;
    next_heartbeat = timer.next_heartbeat_at();
    if (release_requested) begin_release();
}

void Elector::Impl::on_leader_error(Session& s, const std::exception& e) {
    const bool broken = dynamic_cast<const ConnectionError*>(&e) != nullptr;
    if (&s == &second) {  // it only ever idles while we lead: it closed
        second.close();
        lose(LossReason::connection_lost, std::string("second session: ") + e.what());
    } else if (broken) {
        main.close();
        lose(LossReason::connection_lost, e.what());
    } else if (policy::recovery_for(e) == policy::Recovery::fatal) {
        lose(LossReason::refused, e.what());
    } else {
        // A transient error: try again soon; the deadline rule still applies.
        phase = Phase::lead;
        next_heartbeat = Clock::now() + timing.heartbeat_retry;
        if (release_requested) begin_release();
    }
}

// The sessions stay open: the lease stays bound to whichever of them still
// lives, so it cannot pass on before the work has stopped (release()).
void Elector::Impl::lose(LossReason reason, const std::string& detail) {
    const bool release_now = release_requested;  // the work had stopped already
    phase = Phase::stepping_down;
    state = State::stepping_down;
    was_lost = true;
    notified_check = TimePoint::max();
    release_requested = false;
    if (ev.on_lost) ev.on_lost(reason, detail);
    if (release_now && phase == Phase::stepping_down) begin_release();
}

void Elector::Impl::leader_timers(TimePoint now) {
    if (timer.must_step_down(now)) {
        lose(LossReason::deadline, phase == Phase::heartbeat ? "heartbeat not confirmed in time"
                                                             : "no heartbeat confirmed in time");
    } else if (phase == Phase::lead && (now >= notified_check || now >= next_heartbeat) &&
               main.idle()) {
        send_heartbeat();  // (with one session, after the watch in flight on it returned)
    }
    if (phase == Phase::lead || phase == Phase::heartbeat) maybe_watch(now);
}

void Elector::Impl::notifications() {
    if (phase != Phase::lead && phase != Phase::heartbeat) {
        (void)main.notifications();
        return;
    }
    const int own = main.backend_pid();
    for (const auto& [pid, payload] : main.notifications())
        if (pid != own && payload == opt.name)  // someone else changed our lease: check now
            // (the watch, when there is one, has reported it already)
            notified_check = std::min(notified_check,
                                      std::max(Clock::now(), last_beat_sent + kNotifiedCheckGap));
}

}  // namespace singleton_lock
