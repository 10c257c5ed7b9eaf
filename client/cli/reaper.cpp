#include "reaper.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace singleton_lock::cli::reaper {

namespace {

// The parent pid in /proc/PID/stat ("pid (comm) S ppid ..."), -1 when unreadable.
pid_t parent_of(const char* pid_text) {
    char path[64] = "/proc/";
    std::size_t len = 6;
    for (const char* c = pid_text; *c != '\0' && len < 40; ++c) path[len++] = *c;
    std::memcpy(path + len, "/stat", 6);
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')');  // comm may contain anything but ends at the last ')'
    if (p == nullptr || p[1] == '\0' || p[2] == '\0') return -1;
    p += 3;  // ") S "
    while (*p != ' ' && *p != '\0') ++p;
    pid_t ppid = 0;
    for (++p; *p >= '0' && *p <= '9'; ++p) ppid = ppid * 10 + (*p - '0');
    return ppid;
}

bool all_digits(const char* s) {
    if (*s == '\0') return false;
    for (; *s != '\0'; ++s)
        if (*s < '0' || *s > '9') return false;
    return true;
}

pid_t to_pid(const char* s) {
    pid_t v = 0;
    for (; *s != '\0'; ++s) v = v * 10 + (*s - '0');
    return v;
}

// Calls f(name) for every numeric entry of the directory dir (getdents64: no allocation).
template <typename F>
void for_each_number(int dir, F&& f) {
    alignas(8) char buf[8192];
    for (;;) {
        const ssize_t n = ::getdents64(dir, buf, sizeof buf);
        if (n <= 0) return;
        for (ssize_t off = 0; off < n;) {
            const auto* d = reinterpret_cast<const dirent64*>(buf + off);
            off += d->d_reclen;
            if (all_digits(d->d_name)) f(d->d_name);
        }
    }
}

// SIGKILL to the pids listed in /proc/self/task/TID/children. False when the
// kernel has no such file (CONFIG_PROC_CHILDREN). The list may miss a child
// that changes state meanwhile: the caller scans again when nothing ends.
bool kill_listed_children() {
    const int tasks = ::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tasks < 0) return false;
    bool listed = true;
    for_each_number(tasks, [&](const char* tid) {
        char path[64];
        std::size_t len = 0;
        for (const char* c = tid; *c != '\0' && len < 30; ++c) path[len++] = *c;
        std::memcpy(path + len, "/children", 10);
        const int fd = ::openat(tasks, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            listed = false;
            return;
        }
        char buf[4096];
        const ssize_t n = ::read(fd, buf, sizeof buf - 1);
        ::close(fd);
        pid_t pid = 0;
        for (ssize_t i = 0; i < n; ++i) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                pid = pid * 10 + (buf[i] - '0');
            } else if (pid > 0) {
                ::kill(pid, SIGKILL);
                pid = 0;
            }
        }
        if (pid > 0) ::kill(pid, SIGKILL);
    });
    ::close(tasks);
    return listed;
}

// SIGKILL to every child of ours: from the kernel's lists when `quick` and the
// kernel has them, else by reading every process's parent (what a scan that
// follows a quiet period always does, so no list is ever relied upon). A
// child's pid cannot be reused before we reap it, so what /proc says is our
// child is the process we kill.
void kill_children(bool quick) {
    if (quick && kill_listed_children()) return;
    const pid_t self = ::getpid();
    const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    for_each_number(dir, [&](const char* pid) {
        if (parent_of(pid) == self) ::kill(to_pid(pid), SIGKILL);
    });
    ::close(dir);
}

// Waits up to 2 ms for a child to change state; false when none did.
bool child_event_within_2ms(int sigchld_fd) {
    if (sigchld_fd < 0) {
        const timespec ts{0, 1000000};
        ::nanosleep(&ts, nullptr);
        return false;  // (no way to tell: the caller scans again)
    }
    pollfd p{sigchld_fd, POLLIN, 0};
    if (::poll(&p, 1, 2) <= 0) return false;
    signalfd_siginfo si;
    while (::read(sigchld_fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
    }
    return true;
}

}  // namespace

bool become_subreaper() { return ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0; }

// One scan of /proc normally does: it kills the group and every child; the
// rest is reaping them as they die (an adopted zombie is announced by SIGCHLD
// too). A process whose parent we just reaped is adopted by us without any
// signal, so every reap is followed by a quick look at our children list (no
// waiting for a quiet period before killing the adopted). Only when no child
// ends for a while may there be one we never signalled: a full scan of /proc.
int kill_and_reap_all(pid_t group, pid_t watched, int* watched_status, int sigchld_fd) {
    int reaped = 0;
    bool watched_left = watched > 0, scan = true, quick = true;
    for (;;) {
        if (scan) {
            // The group's number cannot be reused while its leader is unreaped.
            if (group > 0 && watched_left) ::kill(-group, SIGKILL);
            kill_children(quick);
            scan = false;
        }
        const int before = reaped;
        for (;;) {
            int st = 0;
            const pid_t w = ::waitpid(-1, &st, WNOHANG);
            if (w > 0) {
                ++reaped;
                if (w == watched) {
                    watched_left = false;
                    if (watched_status) *watched_status = st;
                }
                continue;
            }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return reaped;  // ECHILD: no child, so no descendant, is left
            break;                     // children left that have not died yet
        }
        if (reaped > before) {
            scan = quick = true;  // their orphans are ours now
        } else if (!child_event_within_2ms(sigchld_fd)) {
            scan = true;
            quick = false;
        }
    }
}

bool reap_ended(pid_t keep) {
    for (;;) {
        siginfo_t info{};
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
            return false;
        if (info.si_pid == keep) return true;
        while (::waitpid(info.si_pid, nullptr, 0) < 0 && errno == EINTR) {
        }
    }
}

}  // namespace singleton_lock::cli::reaper
