#include "singleton_lock/admin.hpp"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <mutex>

#include "connection.hpp"
#include "policy.hpp"
#include "sql.hpp"

namespace singleton_lock {

namespace {

// The cancel handle of the call in flight, read by cancel_admin_call (a signal
// handler may run it at any time). Handles are never freed while the process
// runs: a handler may still hold one it loaded just before the call ended.
std::atomic<PGcancel*> call_in_flight{nullptr};

// Publishes `cancel` for cancel_admin_call while a call is in flight.
class InFlight {
  public:
    explicit InFlight(PGcancel* cancel) {
        static std::mutex m;
        // (Never destroyed: still reachable at exit, so not a leak to LSan.)
        static auto* kept = new std::vector<PGcancel*>;
        std::lock_guard<std::mutex> lock(m);
        kept->push_back(cancel);
        call_in_flight.store(cancel);
    }
    ~InFlight() { call_in_flight.store(nullptr); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
};

// An admin connection and the statements to send over it (qualified with
// the extension's schema, as the electors': Sql::schema_from_setup).
struct Admin {
    pq::Connection conn;
    Sql sql;
};

Admin connect_admin(const std::string& dsn, const std::string& schema) {
    // Admin commands are one-shot: libpq defaults plus a bounded connect, and
    // names in UTF-8 like the electors' (else a role's LATIN1 would make
    // "zürich" another lease than the one the electors hold); the electors'
    // session settings too (a role's default_transaction_read_only would
    // refuse a force release).
    auto conn = pq::Connection::open(
        pq::ConnectParams(dsn, {{"connect_timeout", "10"}, {"client_encoding", "UTF8"}}));
    conn.exec(Sql::characteristics, {});
    const auto setup = conn.exec(Sql::setup, {});
    Sql sql(Sql::schema_from_setup(schema, setup));
    return Admin{std::move(conn), std::move(sql)};
}

// Who blocks backend `pid`, looked up over a connection of its own.
std::vector<BlockingSession> blockers_of(const std::string& dsn, const std::string& schema,
                                         int pid) {
    std::vector<BlockingSession> out;
    try {
        auto admin = connect_admin(dsn, schema);
        const auto r = admin.conn.exec(
            "SELECT pid, coalesce(application_name, ''), coalesce(state, ''), "
            "coalesce(pg_catalog.floor(extract(epoch FROM pg_catalog.now() - xact_start))::bigint"
            "::text || ' s', '') FROM pg_catalog.pg_stat_activity "
            "WHERE pid OPERATOR(pg_catalog.=) ANY (pg_catalog.pg_blocking_pids($1::integer)) "
            "ORDER BY xact_start",
            {std::to_string(pid)});
        for (int i = 0; i < r.rows(); ++i)
            out.push_back({std::atoi(r.text(i, 0).c_str()), r.text(i, 1), r.text(i, 2),
                           r.text(i, 3)});
    } catch (const Error&) {
        // (the note goes without names)
    }
    return out;
}

int ms_until(std::chrono::steady_clock::time_point t) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        t - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, INT_MAX));
}

// Runs one call that may wait in the server: cancellable (cancel_admin_call),
// and on_waiting once it has waited notice_after.
pq::Result call_waiting(Admin& admin, const std::string& sql, const pq::Params& params,
                        const AdminWaitHooks& hooks, const std::string& dsn,
                        const std::string& schema) {
    InFlight in_flight(admin.conn.new_cancel());
    admin.conn.send(sql, params);
    const auto notice_at = std::chrono::steady_clock::now() + hooks.notice_after;
    bool noticed = !hooks.on_waiting;
    for (;;) {
        if (auto r = admin.conn.poll_result()) return std::move(*r);
        const short events = POLLIN | (admin.conn.wants_write() ? POLLOUT : 0);
        pollfd p = {admin.conn.fd(), events, 0};
        const int n = ::poll(&p, 1, noticed ? -1 : ms_until(notice_at));
        if (n < 0 && errno == EINTR) continue;  // (a signal: its cancel's reply comes as input)
        if (n < 0) throw ConnectionError("poll failed while waiting for the server");
        if (n == 0) {
            noticed = true;
            hooks.on_waiting(blockers_of(dsn, schema, admin.conn.backend_pid()));
            continue;
        }
        if (p.revents & POLLOUT) admin.conn.flush();
        admin.conn.read_input();
    }
}

}  // namespace

bool cancel_admin_call() noexcept {
    PGcancel* cancel = call_in_flight.load();
    if (cancel == nullptr) return false;
    char error[256];
    (void)PQcancel(cancel, error, sizeof error);
    return true;
}

std::vector<LeaseStatus> list_leases(const std::string& dsn, const std::string& schema,
                                     const std::optional<std::string>& name) {
    if (name) policy::check_label("the lease name", *name);
    auto admin = connect_admin(dsn, schema);
    const auto r = admin.conn.exec(admin.sql.leases, {name});
    std::vector<LeaseStatus> rows;
    rows.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) {
        rows.push_back(LeaseStatus{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3),
                                   r.text(i, 4), r.text(i, 5), r.text(i, 6), r.text(i, 7),
                                   r.text(i, 8), r.text(i, 9), r.text(i, 10), r.text(i, 11),
                                   r.text(i, 12), r.text(i, 13), r.text(i, 14)});
    }
    return rows;
}

bool force_release(const std::string& dsn, const std::string& schema, const std::string& name,
                   const AdminWaitHooks& hooks) {
    policy::check_label("the lease name", name);
    auto admin = connect_admin(dsn, schema);
    const auto r = call_waiting(admin, admin.sql.force_release, {name}, hooks, dsn, schema);
    return r.rows() == 1 && r.text(0, 0) == "t";
}

bool pause(const std::string& dsn, const std::string& schema, const std::string& name,
           const std::string& reason, const AdminWaitHooks& hooks) {
    policy::check_label("the lease name", name);
    policy::require_utf8("the reason", reason);
    auto admin = connect_admin(dsn, schema);
    const auto r = call_waiting(admin, admin.sql.pause, {name, reason}, hooks, dsn, schema);
    return r.rows() == 1 && r.text(0, 0) == "t";
}

bool resume(const std::string& dsn, const std::string& schema, const std::string& name,
            const AdminWaitHooks& hooks) {
    policy::check_label("the lease name", name);
    auto admin = connect_admin(dsn, schema);
    const auto r = call_waiting(admin, admin.sql.resume, {name}, hooks, dsn, schema);
    return r.rows() == 1 && r.text(0, 0) == "t";
}

std::string server_version(const std::string& dsn, const std::string& schema) {
    auto admin = connect_admin(dsn, schema);
    return admin.conn.exec(admin.sql.version, {}).text(0, 0);
}

}  // namespace singleton_lock
