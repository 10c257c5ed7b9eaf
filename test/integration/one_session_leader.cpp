// The library with its default of one session (no second_session), as an
// application embedding it would run: takes lease NAME over DSN, prints
// "leader <token>", releases, exits 0 once the release is confirmed (1
// otherwise). The library's warnings go to stderr as "warning: ...".
// test/scenarios/pgbouncer.sh runs it through PgBouncer.
#include <singleton_lock/singleton_lock.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    using namespace singleton_lock;
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s DSN NAME\n", argv[0]);
        return 2;
    }
    ElectorOptions options;
    options.dsn = argv[1];
    options.name = argv[2];
    options.ttl = std::chrono::seconds(5);
    options.wait = std::chrono::seconds(30);
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
    events.on_failed = [](const std::string& e) { std::fprintf(stderr, "failed: %s\n", e.c_str()); };
    Elector instance(options, events);
    elector = &instance;
    const State end = instance.run();
    return end == State::released && confirmed ? 0 : 1;
}
