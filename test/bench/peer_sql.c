/* Ours through one SQL call, as any language would use it (libpq from C, no
 * client library): the extension's own cost of a handover, to set beside the
 * raw pg_advisory_lock peer (peer_advisory.c) in the handover benchmark.
 *
 *   peer_sql DSN NAME EVENTS TAG
 *
 * Waits in singleton_acquire(NAME, ttl 1 h, wait 1 h) (a session-bound lease:
 * no heartbeat needed while the session lives; a bench round lasts seconds);
 * the moment it returns the lease, appends "start TAG NS PID PGID TOKEN 0" to
 * EVENTS (NS: CLOCK_MONOTONIC). On SIGTERM: "exit TAG NS" (it stops leading),
 * singleton_release (which hands the lease to the waiter in its own commit),
 * exit 0. kill -9: the backend sees EOF and session binding frees the lease. */
#define _GNU_SOURCE
#include "peer_c.h"

/* One row of one column, or NULL (the error on stderr). */
static PGresult *one(PGconn *c, const char *sql, const char *name, const char *token) {
    const char *params[2] = {name, token};
    PGresult *r = PQexecParams(c, sql, token ? 2 : 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) return r;
    fprintf(stderr, "peer_sql: %s", PQerrorMessage(c));
    PQclear(r);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: peer_sql DSN NAME EVENTS TAG\n");
        return 2;
    }
    int fd = -1;
    PGconn *c = peer_start("peer_sql", argv[1], argv[3], &fd);
    if (c == NULL) return 1;
    PGresult *r = one(c,
                      "SELECT token FROM singleton_acquire($1, '1 hour', NULL, '1 hour') "
                      "WHERE acquired",
                      argv[2], NULL);
    if (r == NULL) return 1;
    char token[32];
    snprintf(token, sizeof token, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    stamp_start(fd, argv[4], token);
    await_sigterm(fd, argv[4]);
    r = one(c, "SELECT singleton_release($1, $2::bigint)", argv[2], token);
    int released = r != NULL && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    if (r != NULL) PQclear(r);
    PQfinish(c);
    return released ? 0 : 1;
}
