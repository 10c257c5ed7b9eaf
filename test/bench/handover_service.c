/* The COMMAND of the handover benchmark (test/bench/handover.py).
 *
 *   handover_service EVENTS TAG [tree]
 *
 * At start it appends "start TAG NS PID PGID TOKEN OVERLAP" to EVENTS, NS being
 * CLOCK_MONOTONIC in nanoseconds (the driver reads the same clock with
 * time.monotonic_ns()) and OVERLAP the number of processes of earlier
 * instances (the "ids" lines of EVENTS) still running at that moment, checked
 * right after the stamp. With "tree" it then starts what a real service may
 * leave behind, a child in its process group and a daemon that left it
 * (fork, setsid, fork; it ignores SIGTERM), and appends
 * "ids TAG PID START CHILD START DAEMON START" (START: /proc start time).
 * On SIGTERM it appends "exit TAG NS" and exits 0 at once (a service that stops
 * promptly). Otherwise it sleeps. No shell. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int fd = -1;
static const char *tag = "?";

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Start time (field 22) and state (field 3) of a process; 0 if it is gone. */
static unsigned long long starttime(int pid, char *state) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22 && p; ++field) {
        p = strchr(p, ' ');
        if (p) ++p;
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

/* Processes named by earlier instances' "ids" lines that still run. */
static int count_overlap(const char *events) {
    FILE *f = fopen(events, "r");
    if (!f) return -1;
    char line[512], other[128];
    int overlap = 0;
    while (fgets(line, sizeof line, f)) {
        int off = 0;
        if (sscanf(line, "ids %127s %n", other, &off) != 1 || strcmp(other, tag) == 0) continue;
        int pid;
        unsigned long long start;
        int used;
        for (char *p = line + off; sscanf(p, "%d %llu%n", &pid, &start, &used) == 2; p += used) {
            char state = '?';
            if (starttime(pid, &state) == start && state != 'Z' && state != 'X') ++overlap;
        }
    }
    fclose(f);
    return overlap;
}

static void on_term(int sig) {
    (void)sig;
    char line[128];
    int n = snprintf(line, sizeof line, "exit %s %lld\n", tag, now_ns());
    if (fd >= 0 && n > 0) (void)!write(fd, line, (size_t)n);
    _exit(0);
}

static void sleep_forever(void) {
    for (;;) pause();
}

/* fork, setsid, fork: returns the daemon's pid (its parent exits at once). */
static int start_daemon(void) {
    int p[2];
    if (pipe(p) != 0) return -1;
    pid_t middle = fork();
    if (middle == 0) {
        setsid();
        pid_t d = fork();
        if (d == 0) {
            signal(SIGTERM, SIG_IGN);
            sleep_forever();
        }
        (void)!write(p[1], &d, sizeof d);
        _exit(0);
    }
    pid_t d = -1;
    close(p[1]);
    if (read(p[0], &d, sizeof d) != (ssize_t)sizeof d) d = -1;
    close(p[0]);
    waitpid(middle, NULL, 0);
    return d;
}

static void start_tree(void) {
    pid_t child = fork();
    if (child == 0) {
        signal(SIGTERM, SIG_DFL);  /* dies with its group's SIGTERM, writes nothing */
        sleep_forever();
    }
    pid_t daemon = start_daemon();
    char line[256], s = '?';
    int n = snprintf(line, sizeof line, "ids %s %d %llu %d %llu %d %llu\n", tag, (int)getpid(),
                     starttime(getpid(), &s), (int)child, starttime(child, &s), (int)daemon,
                     starttime(daemon, &s));
    (void)!write(fd, line, (size_t)n);
}

int main(int argc, char **argv) {
    long long t = now_ns();
    if (argc != 3 && argc != 4) return 2;
    tag = argv[2];
    const int overlap = count_overlap(argv[1]);
    fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return 1;
    const char *tok = getenv("SINGLETON_LOCK_TOKEN");
    char line[256];
    int n = snprintf(line, sizeof line, "start %s %lld %d %d %s %d\n", tag, t, (int)getpid(),
                     (int)getpgrp(), tok ? tok : "-", overlap);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    (void)!write(fd, line, (size_t)n);
    if (argc == 4 && strcmp(argv[3], "tree") == 0) start_tree();
    sleep_forever();
}
