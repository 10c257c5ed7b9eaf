// The standby side of the elector: connect, wait for the lease, bind it to the
// second session (and confirm a waited acquire) before reporting leadership.
#include "elector_impl.hpp"

namespace singleton_lock {

using policy::Clock;

namespace {

// At a connection limit: with a second session an elector holds two
// connections, which an operator sizing limits at one per instance does not
// expect.
ConnectionError with_two_sessions_hint(const std::exception& e) {
    return ConnectionError(std::string(e.what()) +
                           " (each instance holds two connections: the second keeps the lease "
                           "bound while the leader works; allow for both in the role's "
                           "CONNECTION LIMIT and in max_connections)");
}

}  // namespace

void Elector::Impl::start() {
    if (phase != Phase::idle) return;
    const auto now = Clock::now();
    if (opt.wait) wait_until = now + *opt.wait;
    guarded(main, [&] { begin_connect(); });
}

// The second session connects first and calls singleton_bind once with a
// token no lease has: that loads the extension into its backend and prepares
// the call (milliseconds, kept out of the takeover's path) and finds out early
// whether the server has singleton_bind. Then the main session connects: being
// the newer one, it stays the lease's newest binding, so the bind at
// leadership only reads and takes a session lock, with no commit to flush.
//
// A new main session's first acquire never waits: it reports a standby at
// once, and after a reconnection it looks before it waits again.
void Elector::Impl::begin_connect() {
    state = State::connecting;
    phase = Phase::connecting;
    first_attempt = true;
    (use_second ? second : main).connect(params, host_timeout);
}

// A pooler (PgBouncer) hands out a backend pid of its own: the server's
// differs. Session binding then ties leases to server sessions the pooler
// keeps open after we are gone, or shares with other clients: say so, once.
// r: Sql::setup's reply, as run over session s.
void Elector::Impl::check_direct(const pq::Result& r, const Session& s) {
    if (warned_pooler || r.rows() != 1 || r.columns() < 2) return;
    const std::string server_pid = r.text(0, 0), binding = r.text(0, 1);
    const std::string client_pid = std::to_string(s.backend_pid());
    if (server_pid.empty() || server_pid == client_pid) return;
    if (binding == "off") return;  // pooled leases, as docs/deploying.md says
    warned_pooler = true;
    if (ev.on_warning)
        ev.on_warning("the connection goes through a connection pooler or proxy (the server "
                      "says backend " + server_pid + ", the connection " + client_pid +
                      "): a lease bound to its server sessions is freed when the pooler closes "
                      "them, not when this process dies, and in transaction pooling they are "
                      "shared. Connect directly, or set singleton_lock.bind_session = off for "
                      "this role (docs/deploying.md)");
}

// r: Sql::setup's reply. Our waits stay under the session's statement_timeout
// (a role or database setting, say), which every new session reports afresh.
void Elector::Impl::learn_limits(const pq::Result& r) {
    if (r.rows() != 1 || r.columns() < 3 || r.is_null(0, 2)) return;
    statement_timeout = Duration(std::stoll(r.text(0, 2)));
}

// The second session warmed up with singleton_bind; now singleton_watch too
// (its first call in a backend costs milliseconds of catalog lookups, which
// would otherwise fall right at leadership), while the main session connects.
void Elector::Impl::on_warmed_up() {
    if (opt.watch && watch_supported) {
        second.send(sql.watch, {opt.name, "0", "0"}, Clock::now() + timing.reply_slack);
        warming_watch = true;
    }
    main.connect(params, host_timeout);
}

// The watch's warm-up returned (result or error): nothing to do but, if the
// lease came first, the bind that waited for the session.
void Elector::Impl::on_watch_warmed(const std::exception* error) {
    warming_watch = false;
    if (error) disable_watch_if_unsupported(*error);
    if (phase == Phase::binding && awaiting_bind && second.idle())
        second.send(sql.bind, {opt.name, std::to_string(token)}, Clock::now() + timing.reply_slack);
}

void Elector::Impl::on_connected(const Session& s) {
    last_contact = Clock::now();
    check_direct(s.setup_result(), s);
    learn_limits(s.setup_result());
    try {
        sql = Sql(Sql::schema_from_setup(opt.schema, s.setup_result()));
    } catch (const ExtensionMissingError& e) {
        return on_error(main, e);  // (main: on the second session it would mean version 1.0)
    }
    if (!main.idle()) {  // the second session is up: warm it up
        second.send(sql.warm_up, {opt.name}, Clock::now() + timing.reply_slack);
        return;
    }
    if (opt.listen) {
        phase = Phase::listen;
        main.send(Sql::listen, {}, Clock::now() + timing.reply_slack);
    } else {
        send_acquire();
    }
}

void Elector::Impl::send_acquire() {
    const auto now = Clock::now();
    const Duration slice =
        first_attempt ? Duration::zero()
                      : policy::within_statement_timeout(policy::wait_slice(timing, now, wait_until),
                                                         statement_timeout);
    waited = slice > Duration::zero();
    phase = Phase::acquire;
    pq::Params args{opt.name, interval_literal(opt.ttl), opt.holder, interval_literal(slice)};
    if (opt.priority != 0) args.push_back(std::to_string(opt.priority));
    main.send(opt.priority != 0 ? sql.acquire_priority : sql.acquire, args,
              policy::reply_deadline(timing, now, slice));
}

void Elector::Impl::on_acquire_reply(const pq::Result& r) {
    if (!second_missing.empty() && ev.on_warning) ev.on_warning(second_missing);
    second_missing.clear();
    if (r.rows() != 1) throw ServerError("singleton_acquire returned no row", "XX000");
    if (r.text(0, 0) != "t") {
        on_standby_reply(r);
        return;
    }
    token = std::stoll(r.text(0, 1));
    expires_at = r.text(0, 3);
    timer = policy::LeaseTimer(timing);
    begin_binding();
}

void Elector::Impl::on_standby_reply(const pq::Result& r) {
    first_attempt = false;
    const std::string holder = r.text(0, 2);
    state = State::standby;
    if (!seen_any || holder != seen_holder) {
        seen_any = true;
        seen_holder = holder;
        if (ev.on_standby) ev.on_standby(LeaseInfo{opt.name, holder, 0, r.text(0, 3), {}});
    }
    if (policy::wait_ran_out(Clock::now(), wait_until)) {
        finish(State::wait_expired);
        if (ev.on_wait_expired) ev.on_wait_expired();
        return;
    }
    send_acquire();
}

// Leadership needs the lease bound to the second session too (so that losing
// one session never frees it while the work runs) and, after an acquire that
// waited, a confirmation when the wait left too little of the lease.
void Elector::Impl::begin_binding() {
    phase = Phase::binding;
    awaiting_bind = use_second;
    awaiting_confirm = false;
    const TimePoint sent = main.sent_at(), now = Clock::now();
    if (!waited) {
        timer.confirmed(sent);
    } else if (policy::lead_before_confirmation(timing, sent, now)) {
        // Count from the acquire's send time (never later than the server's
        // grant): that leaves a full heartbeat interval before the step-down
        // point, so no confirming round trip is needed on the way to leading;
        // the first heartbeat goes out on the usual schedule (send + ttl/3).
        timer.confirmed(sent);
    } else {
        // A wait can outlast the TTL: confirm first, count from the confirmation.
        awaiting_confirm = true;
        main.send(sql.heartbeat, {opt.name, std::to_string(token), interval_literal(opt.ttl)},
                  now + timing.reply_slack);
    }
    if (use_second && !warming_watch)  // (else sent when the warm-up returns)
        second.send(sql.bind, {opt.name, std::to_string(token)}, now + timing.reply_slack);
    maybe_lead();
}

void Elector::Impl::on_bind_reply(const pq::Result& r) {
    // false: the token is no longer current (lost in between): nothing started yet.
    if (r.rows() != 1 || r.text(0, 0) != "t")
        throw Error("the lease was lost before the second session could bind it");
    awaiting_bind = false;
    maybe_lead();
}

void Elector::Impl::on_confirm_reply(const pq::Result& r) {
    if (r.rows() != 1 || r.is_null(0, 0))
        throw Error("the lease was lost between the waited acquire and its confirmation");
    timer.confirmed(main.sent_at());
    expires_at = r.text(0, 0);
    awaiting_confirm = false;
    maybe_lead();
}

void Elector::Impl::maybe_lead() {
    if (!awaiting_bind && !awaiting_confirm) become_leader();
}

void Elector::Impl::on_standby_error(Session& s, const std::exception& e) {
    if (&s == &second && lacks_bind(e)) {
        without_second(e);
        return;
    }
    token = 0;
    main.close();  // cancels what is in flight: an abandoned acquire must not run on
    second.close();
    warming_watch = false;
    if (policy::recovery_for(e) == policy::Recovery::fatal) {
        finish(State::failed);
        std::string why = e.what();
        if (opt.priority != 0 && dynamic_cast<const ExtensionMissingError*>(&e))
            why = "a priority needs extension version 1.1 (ALTER EXTENSION singleton_lock "
                  "UPDATE): " + why;
        if (ev.on_failed) ev.on_failed(why);
    } else if (release_requested) {  // stop requested while (re)connecting
        finish(State::stopped);
    } else if (use_second && policy::connection_limit(e)) {
        back_off(with_two_sessions_hint(e));
    } else {
        back_off(e);
    }
}

// The second session's first call failed for want of singleton_bind (42883):
// an extension without it, to lead with one session. Any other failure (the
// schema named does not exist: 3F000) is the main session's to report.
bool Elector::Impl::lacks_bind(const std::exception& e) const {
    const auto* missing = dynamic_cast<const ExtensionMissingError*>(&e);
    return missing != nullptr && missing->sqlstate() == "42883";
}

// An extension without singleton_bind: lead with one session, and say so once
// the main session's first acquire answered (a schema without our functions
// at all fails there, and that error alone is the one to read).
void Elector::Impl::without_second(const std::exception& e) {
    use_second = false;
    second.close();
    second_missing = std::string("the extension has no singleton_bind (update it): the lease is "
                                 "bound to one session only (") + e.what() + ")";
    // (Not on_warmed_up(): it would warm the watch up on the session just closed.)
    if (phase == Phase::connecting && main.fd() < 0) main.connect(params, host_timeout);
    if (phase == Phase::binding) {
        awaiting_bind = false;
        maybe_lead();
    }
}

void Elector::Impl::back_off(const std::exception& e) {
    const auto now = Clock::now();
    const bool failover = policy::primary_missing(e);
    // A server that answered "read-only" or "starting up" was reached: during a
    // failover this standby is looking for the primary, not cut off (health).
    if (failover) last_contact = now;
    const Duration delay = reconnect.next(now, failover);
    phase = Phase::backoff;
    state = State::connecting;
    due = now + delay;
    if (ev.on_retry) ev.on_retry(e.what(), delay);
}

}  // namespace singleton_lock
