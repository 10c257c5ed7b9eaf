// The COMMAND of the process-exclusion tests (test/integration/exclusion.sh).
//
//   it_command DIR TAG honour|ignore|plain
//
// Its very first action is the check: every process that an earlier COMMAND
// recorded in DIR/*.ids ("pid starttime" lines) must be gone. It writes the
// verdict to DIR/TAG.check: "clean", or "overlap PID..." naming the old
// processes that still ran when this COMMAND started.
//
// Then it starts what a real service might leave behind: a child in its own
// process group and a daemon that left it (fork, setsid, fork: reparented
// away from COMMAND, ignoring SIGTERM). It records the three in DIR/TAG.ids and
// writes DIR/TAG.started ("TOKEN MONOTONIC_NS REALTIME_NS", taken at the check). honour: exits 0 on
// SIGTERM; ignore: ignores SIGTERM (only SIGKILL stops it); plain: exits 0 on SIGTERM and starts no
// other process. No shell.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// Field 22 of /proc/PID/stat (start time in clock ticks) and the state (field 3).
bool stat_of(pid_t pid, unsigned long long& starttime, char& state) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    FILE* f = std::fopen(path, "r");
    if (!f) return false;
    char buf[1024];
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')');
    if (!p) return false;
    p += 2;  // ") S ..." -> "S ..."
    state = *p;
    for (int field = 3; field < 22; ++field) {
        p = std::strchr(p, ' ');
        if (!p) return false;
        ++p;
    }
    starttime = std::strtoull(p, nullptr, 10);
    return true;
}

// The same process (pid and start time) still exists and has not exited.
bool runs(pid_t pid, unsigned long long starttime) {
    unsigned long long now_start = 0;
    char state = '?';
    if (!stat_of(pid, now_start, state)) return false;
    return now_start == starttime && state != 'Z' && state != 'X';
}

std::string check_old_processes(const std::string& dir, const std::string& tag) {
    std::string overlap;
    DIR* d = opendir(dir.c_str());
    if (!d) return "error: cannot read " + dir;
    while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name.size() < 5 || name.compare(name.size() - 4, 4, ".ids") != 0) continue;
        if (name == tag + ".ids") continue;
        FILE* f = std::fopen((dir + "/" + name).c_str(), "r");
        if (!f) continue;
        int pid = 0;
        unsigned long long start = 0;
        while (std::fscanf(f, "%d %llu", &pid, &start) == 2)
            if (runs(pid, start)) overlap += " " + std::to_string(pid) + "(" + name + ")";
        std::fclose(f);
    }
    closedir(d);
    return overlap.empty() ? "clean" : "overlap" + overlap;
}

void write_file(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) std::exit(3);
    std::fputs(text.c_str(), f);
    if (std::fclose(f) != 0) std::exit(3);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) std::exit(3);
}

[[noreturn]] void sleep_forever() {
    for (;;) pause();
}

pid_t start_group_child() {
    const pid_t pid = fork();
    if (pid == 0) sleep_forever();  // default SIGTERM: dies with the group's signal
    return pid;
}

// fork, setsid, fork: the daemon leaves COMMAND's process group and session,
// and its parent exits, so it is reparented away from COMMAND.
pid_t start_daemon() {
    int fds[2];
    if (pipe(fds) != 0) std::exit(3);
    const pid_t middle = fork();
    if (middle == 0) {
        setsid();
        const pid_t daemon = fork();
        if (daemon == 0) {
            signal(SIGTERM, SIG_IGN);
            close(fds[0]);
            close(fds[1]);
            sleep_forever();
        }
        (void)!write(fds[1], &daemon, sizeof daemon);
        _exit(0);
    }
    close(fds[1]);
    pid_t daemon = -1;
    if (read(fds[0], &daemon, sizeof daemon) != static_cast<ssize_t>(sizeof daemon)) std::exit(3);
    close(fds[0]);
    waitpid(middle, nullptr, 0);
    return daemon;
}

std::string id_line(pid_t pid) {
    unsigned long long start = 0;
    char state = '?';
    if (!stat_of(pid, start, state)) std::exit(3);
    return std::to_string(pid) + " " + std::to_string(start) + "\n";
}

void on_term(int) { _exit(0); }

long long now_ns(clockid_t clock) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) return 2;
    const std::string dir = argv[1], tag = argv[2], mode = argv[3];
    const std::string verdict = check_old_processes(dir, tag);  // the first thing it does
    const long long started_ns = now_ns(CLOCK_MONOTONIC), started_real_ns = now_ns(CLOCK_REALTIME);
    if (mode == "ignore")
        signal(SIGTERM, SIG_IGN);
    else
        signal(SIGTERM, on_term);
    write_file(dir + "/" + tag + ".check", verdict + "\n");
    std::string ids = id_line(getpid());
    if (mode != "plain") ids += id_line(start_group_child()) + id_line(start_daemon());
    write_file(dir + "/" + tag + ".ids", ids);
    const char* token = std::getenv("SINGLETON_LOCK_TOKEN");
    write_file(dir + "/" + tag + ".started", std::string(token ? token : "-") + " " +
                                                 std::to_string(started_ns) + " " +
                                                 std::to_string(started_real_ns) + "\n");
    sleep_forever();
}
