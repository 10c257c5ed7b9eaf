/* The COMMAND of the failover scenarios and benchmark: a leader's fenced work.
 *
 *   ledger_worker DSN INSTANCE EVENTS JOURNAL     (SINGLETON_LOCK_NAME/TOKEN from singleton-lock)
 *
 * At exec it appends "start INSTANCE PID NS TOKEN" to EVENTS (NS: CLOCK_REALTIME,
 * the clock the PostgreSQL servers on this machine use for clock_timestamp()).
 * Then, every 20 ms, one write to the downstream ledger on the database cluster:
 * ha_ledger_write(name, token, instance, write_id) checks the lease with
 * singleton_assert inside the same transaction (see ledger.py). Each write the
 * database acknowledged is appended to JOURNAL, a file outside the cluster
 * (under flock, so its order is the real-time order): the acknowledged history
 * that survives whatever the cluster loses in a failover. JOURNAL has its own
 * fence, as an external system would: a write whose token is below the highest
 * token it accepted before is marked rejected.
 *
 * Database errors (the primary crashed, no primary yet) are retried every 20 ms
 * with a new connection. On SIGTERM it appends "stop INSTANCE PID NS TOKEN" and
 * exits 0 at once. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static int events_fd = -1;
static const char *instance = "?";
static const char *token = "0";

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void event(const char *what) {
    char line[256];
    int n = snprintf(line, sizeof line, "%s %s %d %lld %s\n", what, instance, (int)getpid(),
                     now_ns(), token);
    if (events_fd >= 0 && n > 0) (void)!write(events_fd, line, (size_t)n);
}

static void on_term(int sig) {
    (void)sig;
    event("stop");
    _exit(0);
}

/* Appends one acknowledged write to the journal, under an exclusive flock of
 * the journal; its fence (the highest token it accepted) is kept in JOURNAL.fence. */
static void journal_append(const char *path, const char *write_id, long long tok, int db_ok) {
    char fence_path[512];
    snprintf(fence_path, sizeof fence_path, "%s.fence", path);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    if (flock(fd, LOCK_EX) == 0) {
        long long max_tok = 0;
        FILE *f = fopen(fence_path, "r");
        if (f) {
            if (fscanf(f, "%lld", &max_tok) != 1) max_tok = 0;
            fclose(f);
        }
        const int fence_ok = db_ok && tok >= max_tok;
        char line[256];
        int n = snprintf(line, sizeof line, "%s %lld %s %d %d %lld\n", write_id, tok, instance,
                         db_ok, fence_ok, now_ns());
        if (n > 0) (void)!write(fd, line, (size_t)n);
        if (fence_ok && tok > max_tok && (f = fopen(fence_path, "w")) != NULL) {
            fprintf(f, "%lld\n", tok);
            fclose(f);
        }
        flock(fd, LOCK_UN);
    }
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: ledger_worker DSN INSTANCE EVENTS JOURNAL\n");
        return 2;
    }
    instance = argv[2];
    const char *name = getenv("SINGLETON_LOCK_NAME");
    if (getenv("SINGLETON_LOCK_TOKEN")) token = getenv("SINGLETON_LOCK_TOKEN");
    events_fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    event("start");
    if (!name) return 2;

    PGconn *conn = NULL;
    char write_id[128];
    for (long seq = 1;; ++seq) {
        if (!conn || PQstatus(conn) != CONNECTION_OK) {
            if (conn) PQfinish(conn);
            conn = PQconnectdb(argv[1]);
        }
        if (PQstatus(conn) == CONNECTION_OK) {
            snprintf(write_id, sizeof write_id, "%s-%d-%ld", instance, (int)getpid(), seq);
            const char *params[4] = {name, token, instance, write_id};
            PGresult *r = PQexecParams(conn, "SELECT ha_ledger_write($1, $2::bigint, $3, $4)", 4,
                                       NULL, params, NULL, NULL, 0);
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
                journal_append(argv[4], write_id, atoll(token), PQgetvalue(r, 0, 0)[0] == 't');
            PQclear(r);
        }
        usleep(20000);
    }
}
