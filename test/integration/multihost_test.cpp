// A multi-host DSN whose first hosts never answer (a machine gone from the
// network: the TCP connection is accepted or hangs, no reply ever comes), the
// last one being the real server (PG* environment). libpq spends
// connect_timeout on each silent host before the next one: the elector must
// let it reach the last host, not give up after one connect_timeout.
// Skipped when no server answers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "singleton_lock/elector.hpp"

namespace singleton_lock {
namespace {

using namespace std::chrono_literals;

// A TCP listener on 127.0.0.1 whose connections are accepted by the kernel and
// then never read from or answered.
class SilentHost {
  public:
    SilentHost() {
        fd_ = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
            listen(fd_, 64) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            port_ = -1;
        else
            port_ = ntohs(a.sin_port);
    }
    ~SilentHost() { close(fd_); }
    int port() const { return port_; }

  private:
    int fd_ = -1;
    int port_ = -1;
};

// host/port of the server the PG* environment points at, "" when none answers.
std::pair<std::string, std::string> real_server() {
    PGconn* c = PQconnectdb("");
    std::pair<std::string, std::string> out;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult* r = PQexec(c, "CREATE EXTENSION IF NOT EXISTS singleton_lock");
        PQclear(r);
        out = {PQhost(c), PQport(c)};
    }
    PQfinish(c);
    return out;
}

TEST(MultiHost, ReachesTheLastHostPastSilentOnes) {
    const auto [host, port] = real_server();
    if (host.empty()) GTEST_SKIP() << "no PostgreSQL server with singleton_lock (PG* environment)";
    SilentHost a, b;
    ASSERT_GT(a.port(), 0);
    ASSERT_GT(b.port(), 0);
    ElectorOptions o;
    o.name = "it_multihost_" + std::to_string(getpid());
    o.ttl = 5s;  // the client's connect_timeout: 2 s per host (libpq's floor)
    o.dsn = "host=127.0.0.1,127.0.0.1," + host + " port=" + std::to_string(a.port()) + "," +
            std::to_string(b.port()) + "," + port;
    std::atomic<std::int64_t> token{0};
    std::vector<std::string> errors;
    ElectorEvents ev;
    ev.on_leader = [&](const LeaseInfo& l) { token = l.token; };
    ev.on_retry = [&](const std::string& e, Duration) { errors.push_back(e); };
    Elector elector(o, ev);
    const auto start = std::chrono::steady_clock::now();
    std::thread t([&] { elector.run(); });
    while (token == 0 && std::chrono::steady_clock::now() - start < 30s)
        std::this_thread::sleep_for(10ms);
    const auto took = std::chrono::steady_clock::now() - start;
    elector.request_stop();
    t.join();
    ASSERT_NE(token.load(), 0) << "never reached the server past two silent hosts; first error: "
                               << (errors.empty() ? "none" : errors.front());
    std::printf("leader past two silent hosts after %lld ms\n",
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
}

}  // namespace
}  // namespace singleton_lock
