// Release committed -> waiting acquire returns, on the server clock.
//
//   wake_latency ITERATIONS > samples.csv     (connection from PG* environment)
//
// Two connections: H holds lease "wake-bench", W waits for it with
// singleton_acquire(..., wait => '10s'). Once W's backend sleeps in the
// extension's wait (pg_stat_activity wait_event_type = 'Extension'), H releases
// in its own transaction (BEGIN; release; COMMIT) and then reads its commit's
// timestamp (pg_xact_commit_timestamp: needs track_commit_timestamp = on).
// Per iteration one CSV line, all in microseconds since the epoch (server and
// client share this host's realtime clock):
//   commit_ts       release's commit record time (server; taken before its WAL flush)
//   commit_ack      client time when H's COMMIT returned (release durable and visible)
//   waiter_acq      waiter's acquisition time = returned expires_at - ttl (server clock,
//                   taken after the waiter locked the row; before its own durable commit)
//   waiter_ret_srv  clock_timestamp() of W's next statement (server; after the acquire
//                   returned, i.e. after its durable commit, plus one round trip)
//   waiter_ret_cli  client time when W received the acquire's result
#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

[[noreturn]] void die(const std::string& what, PGconn* conn) {
    std::fprintf(stderr, "wake_latency: %s: %s\n", what.c_str(),
                 conn != nullptr ? PQerrorMessage(conn) : "");
    std::exit(1);
}

long long now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

PGconn* connect() {
    PGconn* conn = PQconnectdb("");
    if (PQstatus(conn) != CONNECTION_OK) die("connect", conn);
    return conn;
}

// Runs one statement; returns the first column of the first row ("" if none).
std::string one(PGconn* conn, const std::string& sql) {
    PGresult* res = PQexec(conn, sql.c_str());
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) die(sql, conn);
    std::string value;
    if (st == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        value = PQgetvalue(res, 0, 0);
    PQclear(res);
    return value;
}

}  // namespace

int main(int argc, char** argv) {
    int iterations = argc > 1 ? std::atoi(argv[1]) : 150;
    PGconn* h = connect();
    PGconn* w = connect();
    const std::string wpid = one(w, "SELECT pg_backend_pid()");
    one(h, "SELECT singleton_force_release('wake-bench')");

    std::printf("commit_ts,commit_ack,waiter_acq,waiter_ret_srv,waiter_ret_cli\n");
    for (int i = 0; i < iterations; i++) {
        std::string token_h =
            one(h, "SELECT token FROM singleton_acquire('wake-bench', '60 s', 'bench-H')");
        if (token_h.empty()) die("H could not take the lease", h);

        if (!PQsendQuery(w,
                         "SELECT a.acquired, a.token,"
                         " (extract(epoch FROM a.expires_at - interval '60 s') * 1e6)::bigint"
                         " FROM singleton_acquire('wake-bench', '60 s', 'bench-W',"
                         " wait => '10 s') a"))
            die("send waiter", w);

        // Wait until W sleeps inside the extension's wait.
        bool sleeping = false;
        for (int k = 0; k < 5000 && !sleeping; k++) {
            sleeping = one(h, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = " + wpid) ==
                       "Extension";
            if (!sleeping) std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        if (!sleeping) die("waiter never went to sleep", h);
        // Let it settle in WaitLatch (the wait event is set just before).
        std::this_thread::sleep_for(std::chrono::milliseconds(2));

        one(h, "BEGIN");
        std::string xid = one(h, "SELECT pg_current_xact_id()::text");
        if (one(h, "SELECT singleton_release('wake-bench', " + token_h + ")") != "t")
            die("release refused", h);
        one(h, "COMMIT");
        long long commit_ack = now_us();

        PGresult* res = PQgetResult(w);
        long long waiter_ret_cli = now_us();
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) die("waiter", w);
        if (std::strcmp(PQgetvalue(res, 0, 0), "t") != 0) die("waiter did not acquire", w);
        std::string token_w = PQgetvalue(res, 0, 1);
        std::string waiter_acq = PQgetvalue(res, 0, 2);
        PQclear(res);
        while ((res = PQgetResult(w)) != nullptr) PQclear(res);

        std::string waiter_ret_srv =
            one(w, "SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint");
        std::string commit_ts = one(
            h, "SELECT (extract(epoch FROM pg_xact_commit_timestamp('" + xid + "'::xid)) * 1e6)::bigint");
        if (commit_ts.empty()) die("no commit timestamp (track_commit_timestamp off?)", h);
        std::printf("%s,%lld,%s,%s,%lld\n", commit_ts.c_str(), commit_ack, waiter_acq.c_str(),
                    waiter_ret_srv.c_str(), waiter_ret_cli);
        std::fflush(stdout);

        if (one(w, "SELECT singleton_release('wake-bench', " + token_w + ")") != "t")
            die("waiter's release refused", w);
    }
    PQfinish(w);
    PQfinish(h);
    return 0;
}
