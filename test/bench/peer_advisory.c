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
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void event(int fd, const char *line) { (void)!write(fd, line, strlen(line)); }

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
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL); /* taken with sigwait, once leading */
    int fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    PGconn *c = PQconnectdb(argv[1]);
    if (fd < 0 || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "peer_advisory: %s", PQerrorMessage(c));
        return 1;
    }
    char sql[128], line[256];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%s)", argv[2]);
    if (!ok(c, sql)) return 1;
    snprintf(line, sizeof line, "start %s %lld %d %d - 0\n", argv[4], now_ns(), (int)getpid(),
             (int)getpgrp());
    event(fd, line);
    int sig = 0;
    sigwait(&term, &sig);
    snprintf(line, sizeof line, "exit %s %lld\n", argv[4], now_ns());
    event(fd, line);
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%s)", argv[2]);
    ok(c, sql);
    PQfinish(c);
    return 0;
}
