/* What the C peers of the handover benchmark share (peer_advisory.c,
 * peer_sql.c): their start-up and the event protocol of handover.py, whose
 * stamps are CLOCK_MONOTONIC nanoseconds (the driver's time.monotonic_ns()). */
#ifndef SL_BENCH_PEER_C_H
#define SL_BENCH_PEER_C_H

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

/* "start TAG NS PID PGID TOKEN 0": this process leads now. */
static void stamp_start(int fd, const char *tag, const char *token) {
    char line[256];
    snprintf(line, sizeof line, "start %s %lld %d %d %s 0\n", tag, now_ns(), (int)getpid(),
             (int)getpgrp(), token);
    event(fd, line);
}

/* Waits for SIGTERM (blocked since peer_start), then "exit TAG NS": it stops leading. */
static void await_sigterm(int fd, const char *tag) {
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    int sig = 0;
    sigwait(&term, &sig);
    char line[128];
    snprintf(line, sizeof line, "exit %s %lld\n", tag, now_ns());
    event(fd, line);
}

/* SIGTERM blocked (taken by await_sigterm), EVENTS opened into *fd, DSN
 * connected; NULL on failure (the error on stderr, prefixed with `who`). */
static PGconn *peer_start(const char *who, const char *dsn, const char *events, int *fd) {
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    *fd = open(events, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    PGconn *c = PQconnectdb(dsn);
    if (*fd < 0 || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "%s: %s", who, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

#endif
