#include "health.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace singleton_lock::cli {

namespace {

void reply(httplib::Response& res, bool ok, const char* body) {
    res.status = ok ? 200 : 503;
    res.set_content(std::string(body) + "\n", "text/plain");
}

// The local port of a connected socket (0: not a connected TCP socket).
int connected_local_port(int fd) {
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return 0;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) return 0;
    if (local.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in&>(local).sin_port);
    if (local.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6&>(local).sin6_port);
    return 0;
}

// Ends (shutdown, not close: the worker still owns the descriptor) every
// connection accepted on port. httplib's worker reads a request for as long as
// bytes come, so a client trickling bytes held it, and the join at exit, for
// as long as it liked. A connection of ours to elsewhere never has the port as
// its local one: the kernel does not pick a port bound by a listener.
void end_connections_on(int port) {
    DIR* fds = ::opendir("/proc/self/fd");
    if (fds == nullptr) return;
    while (const dirent* entry = ::readdir(fds)) {
        const int fd = std::atoi(entry->d_name);
        if (fd <= STDERR_FILENO || fd == ::dirfd(fds)) continue;
        // Checked and shut down through a duplicate: the very socket checked,
        // even should the number be closed and reused meanwhile.
        const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (dup < 0) continue;
        if (connected_local_port(dup) == port) ::shutdown(dup, SHUT_RDWR);
        ::close(dup);
    }
    ::closedir(fds);
}

bool is_endpoint(const std::string& path) {
    for (const char* ours : {"/livez", "/readyz", "/leader", "/healthz", "/metrics"})
        if (path == ours) return true;
    return false;
}

// Throws when host does not resolve (httplib's bind then fails with a stale
// errno: "Resource temporarily unavailable" for a name that does not exist).
void check_resolves(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (rc == 0) return ::freeaddrinfo(found);
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) +
                             ": cannot resolve " + host + ": " + ::gai_strerror(rc));
}

}  // namespace

HealthServer::HealthServer(const std::string& host, int port, const HealthSource& source)
    : server_(std::make_unique<httplib::Server>()) {
    auto& s = *server_;
    s.new_task_queue = [] { return new httplib::ThreadPool(1); };  // RSS: one worker is plenty
    s.set_keep_alive_max_count(1);
    s.set_read_timeout(2, 0);
    // httplib's default is no limit: a POST of 400 MiB grew the wrapper by 330 MiB.
    s.set_payload_max_length(4096);
    s.set_write_timeout(2, 0);
    // SO_REUSEADDR (a restart binds again at once) but not httplib's default
    // SO_REUSEPORT: with it a second instance given the same port bound it too,
    // and the kernel spread probes between them (a standby's 503 and a leader's
    // 200 at random for /readyz).
    s.set_socket_options([](socket_t sock) {
        const int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    routes(source);
    check_resolves(host, port);
    if (port == 0) {
        port_ = s.bind_to_any_port(host);
        if (port_ <= 0) throw std::runtime_error("cannot listen on " + host + ":0");
    } else {
        errno = 0;
        if (!s.bind_to_port(host, port))
            throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) +
                                     (errno != 0 ? std::string(": ") + std::strerror(errno) : ""));
        port_ = port;
    }
    thread_ = std::thread([this] {
        server_->listen_after_bind();  // (returns once its worker is done too)
        served_ = true;
    });
}

void HealthServer::routes(const HealthSource& source) {
    auto& s = *server_;
    s.Get("/livez", [&source](const httplib::Request&, httplib::Response& res) {
        const bool alive = source.alive();
        reply(res, alive, alive ? "alive" : "stuck");
    });
    const auto ready = [&source](const httplib::Request&, httplib::Response& res) {
        const bool leader = source.leader();
        reply(res, leader, leader ? "leader" : "standby");
    };
    s.Get("/readyz", ready);
    s.Get("/leader", ready);
    s.Get("/healthz", [&source](const httplib::Request&, httplib::Response& res) {
        switch (source.health()) {
            case HealthSource::Health::leader:
                return reply(res, true, "leader");
            case HealthSource::Health::standby:
                return reply(res, true, "standby");
            case HealthSource::Health::unreachable:
                return reply(res, false, "unreachable");
        }
    });
    s.Get("/metrics", [&source](const httplib::Request&, httplib::Response& res) {
        res.set_content(source.metrics(), "text/plain; version=0.0.4; charset=utf-8");
    });
    refuse_other_methods();
}

// The endpoints only read (GET, and HEAD, which httplib answers from the GET
// handler). Every other method, on any path, has a handler here that never
// reads the body: httplib's limit (set_payload_max_length) does not hold for a
// chunked body, and a chunked POST of 400 MiB to any path grew the wrapper by
// 280 MiB. On our paths the answer is 405 with Allow, as HTTP says (httplib's
// own was 400 or 404, which reads as a wrong path).
void HealthServer::refuse_other_methods() {
    static const char* const allowed = "GET, HEAD, OPTIONS";
    const auto refuse = [](const httplib::Request& req, httplib::Response& res,
                           const httplib::ContentReader&) {
        if (!is_endpoint(req.path)) {
            res.status = 404;
            return;
        }
        res.status = 405;
        res.set_header("Allow", allowed);
        res.set_content("method not allowed: use GET\n", "text/plain");
    };
    auto& s = *server_;
    s.Post(".*", refuse);
    s.Put(".*", refuse);
    s.Patch(".*", refuse);
    s.Delete(".*", refuse);
    s.Options(".*", [](const httplib::Request&, httplib::Response& res) {
        res.status = 204;
        res.set_header("Allow", allowed);
    });
}

HealthServer::~HealthServer() {
    server_->stop();
    // Again until the threads are done: one accepted just before the stop.
    while (!served_.load()) {
        end_connections_on(port_);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (thread_.joinable()) thread_.join();
}

}  // namespace singleton_lock::cli

extern "C" singleton_lock::cli::HealthEndpoint* singleton_lock_health_open_v1(
    const char* build_version, const char* host, int port,
    const singleton_lock::cli::HealthSource* source, char* error, std::size_t error_size) {
    const auto fail = [&](const std::string& message) -> singleton_lock::cli::HealthEndpoint* {
        std::snprintf(error, error_size, "%s", message.c_str());
        return nullptr;
    };
    if (std::strcmp(build_version, SINGLETON_LOCK_VERSION) != 0)
        return fail(std::string("the module is of version ") + SINGLETON_LOCK_VERSION +
                    ", singleton-lock of version " + build_version);
    try {  // no exception leaves the module
        return new singleton_lock::cli::HealthServer(host, port, *source);
    } catch (const std::exception& e) {
        return fail(e.what());
    } catch (...) {
        return fail("unknown error");
    }
}
