/* The COMMAND of the handover benchmark (test/bench/handover.py).
 *
 *   handover_service EVENTS TAG
 *
 * At start it appends "start TAG NS PID PGID TOKEN" to EVENTS, NS being
 * CLOCK_MONOTONIC in nanoseconds (the driver reads the same clock with
 * time.monotonic_ns()). On SIGTERM it appends "exit TAG NS" and exits 0 at once
 * (a service that stops promptly). Otherwise it sleeps. No stdio, no shell: the
 * stamp is taken a few microseconds after exec. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fd = -1;
static const char *tag = "?";

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void on_term(int sig) {
    (void)sig;
    char line[128];
    int n = snprintf(line, sizeof line, "exit %s %lld\n", tag, now_ns());
    if (fd >= 0 && n > 0) (void)!write(fd, line, (size_t)n);
    _exit(0);
}

int main(int argc, char **argv) {
    long long t = now_ns();
    if (argc != 3) return 2;
    tag = argv[2];
    fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return 1;
    const char *tok = getenv("SINGLETON_LOCK_TOKEN");
    char line[256];
    int n = snprintf(line, sizeof line, "start %s %lld %d %d %s\n", tag, t, (int)getpid(),
                     (int)getpgrp(), tok ? tok : "-");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    (void)!write(fd, line, (size_t)n);
    for (;;) pause();
}
