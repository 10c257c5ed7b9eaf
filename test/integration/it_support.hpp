// Helpers shared by the library's integration tests (elector_test.cpp,
// priority_test.cpp): the real server from the PG* environment, through libpq.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>

namespace singleton_lock::it {

// Whether a server answers and, once the extension is created if missing,
// `probe` (a query naming what the test needs of the extension) succeeds.
inline bool extension_answers(const char* probe) {
    PGconn* c = PQconnectdb("");
    bool ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PQclear(PQexec(c, "CREATE EXTENSION IF NOT EXISTS singleton_lock"));
        PGresult* r = PQexec(c, probe);
        ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
    }
    PQfinish(c);
    return ok;
}

// extension_answers(probe), asked once per test binary.
inline bool server_ready(const std::string& probe) {
    static std::map<std::string, bool> known;  // (tests run on the main thread)
    auto found = known.find(probe);
    if (found == known.end()) found = known.emplace(probe, extension_answers(probe.c_str())).first;
    return found->second;
}

// A lease name no other test (nor a parallel run) uses: prefix, what, pid, random.
inline std::string unique_name(const std::string& prefix, const char* what) {
    return prefix + what + "_" + std::to_string(getpid()) + "_" +
           std::to_string(std::random_device{}() % 100000);
}

// Polls f every `every` until it holds or `limit` has passed; f's last answer.
template <typename F>
bool eventually(F&& f, std::chrono::milliseconds limit = std::chrono::seconds(20),
                std::chrono::milliseconds every = std::chrono::milliseconds(5)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (f()) return true;
        std::this_thread::sleep_for(every);
    }
    return f();
}

// One statement on a fresh connection (dsn: on top of the PG* environment);
// the first column of the first row ("" if none).
inline std::string query(const std::string& sql, const std::string& dsn = "") {
    PGconn* c = PQconnectdb(dsn.c_str());
    PGresult* r = PQexec(c, sql.c_str());
    std::string out = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0)
                                                                               : std::string();
    PQclear(r);
    PQfinish(c);
    return out;
}

// One command on a fresh connection; whether it succeeded (the error on stderr).
inline bool command(const std::string& sql, const std::string& dsn = "") {
    PGconn* c = PQconnectdb(dsn.c_str());
    PGresult* r = PQexec(c, sql.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) std::fprintf(stderr, "%s: %s", sql.c_str(), PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok;
}

}  // namespace singleton_lock::it

// Skips the test unless server_ready(probe); `needs` names what the probe requires.
#define IT_REQUIRE_SERVER(probe, needs)             \
    if (!::singleton_lock::it::server_ready(probe)) \
    GTEST_SKIP() << "no PostgreSQL server with " needs " (PG* environment)"
