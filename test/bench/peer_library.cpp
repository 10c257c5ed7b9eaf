// Ours in-process, as an application using the C++ library would (the
// library's defaults: one session, heartbeats every ttl/3, a step-down watch),
// set beside the peer libraries in the handover benchmark (handover.py, "lib").
//
//   peer_library DSN NAME EVENTS TAG
//
// Waits as a standby; on_leader appends "start TAG NS PID PGID TOKEN 0" to
// EVENTS (NS: CLOCK_MONOTONIC). On SIGTERM: "exit TAG NS" (its work stops at
// once), then the elector releases, handing the lease to the waiter in the
// release's commit, and the program exits 0 once the release is confirmed.
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include <singleton_lock/singleton_lock.hpp>

namespace {

int events_fd = -1;
const char* tag = "";
singleton_lock::Elector* elector = nullptr;

long long now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void event(const char* line) { (void)!::write(events_fd, line, std::strlen(line)); }

// Async-signal-safe: the stamp (snprintf of integers does not allocate in
// glibc), then request_stop().
void on_sigterm(int) {
    char line[256];
    std::snprintf(line, sizeof line, "exit %s %lld\n", tag, now_ns());
    event(line);
    if (elector != nullptr) elector->request_stop();
}

}  // namespace

int main(int argc, char** argv) {
    using namespace singleton_lock;
    if (argc != 5) {
        std::fprintf(stderr, "usage: peer_library DSN NAME EVENTS TAG\n");
        return 2;
    }
    events_fd = ::open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (events_fd < 0) return 1;
    tag = argv[4];
    ElectorOptions options;
    options.dsn = argv[1];
    options.name = argv[2];
    options.ttl = std::chrono::seconds(10);
    bool confirmed = false;
    ElectorEvents on;
    on.on_leader = [](const LeaseInfo& mine) {
        char line[256];
        std::snprintf(line, sizeof line, "start %s %lld %d %d %lld 0\n", tag, now_ns(),
                      static_cast<int>(::getpid()), static_cast<int>(::getpgrp()),
                      static_cast<long long>(mine.token));
        event(line);
    };
    on.on_released = [&](bool released) { confirmed = released; };
    on.on_warning = [](const std::string& m) { std::fprintf(stderr, "warning: %s\n", m.c_str()); };
    on.on_failed = [](const std::string& e) { std::fprintf(stderr, "failed: %s\n", e.c_str()); };
    Elector instance(options, on);
    elector = &instance;
    struct sigaction sa {};
    sa.sa_handler = on_sigterm;
    ::sigaction(SIGTERM, &sa, nullptr);
    const State end = instance.run();
    elector = nullptr;
    std::fprintf(stderr, "%s\n", to_string(end));
    return end == State::released && confirmed ? 0 : 1;
}
