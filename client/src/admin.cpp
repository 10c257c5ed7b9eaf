#include "singleton_lock/admin.hpp"

#include "connection.hpp"
#include "policy.hpp"
#include "sql.hpp"

namespace singleton_lock {

namespace {

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

}  // namespace

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

bool force_release(const std::string& dsn, const std::string& schema, const std::string& name) {
    policy::check_label("the lease name", name);
    auto admin = connect_admin(dsn, schema);
    const auto r = admin.conn.exec(admin.sql.force_release, {name});
    return r.rows() == 1 && r.text(0, 0) == "t";
}

bool pause(const std::string& dsn, const std::string& schema, const std::string& name,
           const std::string& reason) {
    policy::check_label("the lease name", name);
    policy::require_utf8("the reason", reason);
    auto admin = connect_admin(dsn, schema);
    const auto r = admin.conn.exec(admin.sql.pause, {name, reason});
    return r.rows() == 1 && r.text(0, 0) == "t";
}

bool resume(const std::string& dsn, const std::string& schema, const std::string& name) {
    policy::check_label("the lease name", name);
    auto admin = connect_admin(dsn, schema);
    const auto r = admin.conn.exec(admin.sql.resume, {name});
    return r.rows() == 1 && r.text(0, 0) == "t";
}

std::string server_version(const std::string& dsn, const std::string& schema) {
    auto admin = connect_admin(dsn, schema);
    return admin.conn.exec(admin.sql.version, {}).text(0, 0);
}

}  // namespace singleton_lock
