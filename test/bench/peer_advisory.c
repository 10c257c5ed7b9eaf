/* The raw baseline of the handover benchmark (test/bench/handover.py): a
 * session-level pg_advisory_lock, the least any PostgreSQL leader election
 * can do. No lease, no fencing token, no TTL.
 *
 *   peer_advisory DSN KEY EVENTS TAG
 *
 * Blocks in pg_advisory_lock(KEY); the moment it returns, appends
 * "start TAG NS PID PGID - 0" to EVENTS (NS: CLOCK_MONOTONIC). On SIGTERM:
 * "exit TAG NS" (it stops leading), pg_advisory_unlock(KEY), exit 0. */
#define _GNU_SOURCE
#include "peer_c.h"

static int ok(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    int good = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!good) fprintf(stderr, "peer_advisory: %s", PQerrorMessage(c));
    PQclear(r);
    return good;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: peer_advisory DSN KEY EVENTS TAG\n");
        return 2;
    }
    int fd = -1;
    PGconn *c = peer_start("peer_advisory", argv[1], argv[3], &fd);
    if (c == NULL) return 1;
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%s)", argv[2]);
    if (!ok(c, sql)) return 1;
    stamp_start(fd, argv[4], "-");
    await_sigterm(fd, argv[4]);
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%s)", argv[2]);
    ok(c, sql);
    PQfinish(c);
    return 0;
}
