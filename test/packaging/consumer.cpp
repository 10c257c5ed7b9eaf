// A program that knows singleton_lock only as installed: built with the flags
// `pkg-config --cflags --libs singleton_lock` prints. It takes the lease NAME,
// prints "leader <token>", releases it through the library and exits 0 once the
// release is confirmed (1 otherwise). The library's warnings go to stderr as
// "warning: ...". It uses the library's defaults (one session): the meson build
// also makes it for test/scenarios/pgbouncer.sh.
#include <singleton_lock/singleton_lock.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    using namespace singleton_lock;
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s NAME   (the server: PG* environment)\n", argv[0]);
        return 2;
    }
    ElectorOptions options;
    options.name = argv[1];
    options.ttl = std::chrono::seconds(10);
    options.wait = std::chrono::seconds(60);
    Elector* elector = nullptr;
    bool confirmed = false;
    ElectorEvents events;
    events.on_leader = [&](const LeaseInfo& mine) {
        std::printf("leader %lld\n", static_cast<long long>(mine.token));
        std::fflush(stdout);
        elector->request_stop();  // a leader releases
    };
    events.on_released = [&](bool released) { confirmed = released; };
    events.on_warning = [](const std::string& m) { std::fprintf(stderr, "warning: %s\n", m.c_str()); };
    events.on_failed = [](const std::string& error) { std::fprintf(stderr, "failed: %s\n", error.c_str()); };
    events.on_retry = [](const std::string& error, Duration) {
        std::fprintf(stderr, "retrying: %s\n", error.c_str());
    };
    Elector instance(options, events);
    elector = &instance;
    State end = instance.run();
    std::printf("%s\n", to_string(end));
    return end == State::released && confirmed ? 0 : 1;
}
