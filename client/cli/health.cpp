#include "health.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace singleton_lock::cli {

namespace {

void reply(httplib::Response& res, bool ok, const char* body) {
    res.status = ok ? 200 : 503;
    res.set_content(std::string(body) + "\n", "text/plain");
}

}  // namespace

HealthServer::HealthServer(const std::string& host, int port, const HealthSource& source)
    : server_(std::make_unique<httplib::Server>()) {
    auto& s = *server_;
    s.new_task_queue = [] { return new httplib::ThreadPool(1); };  // RSS: one worker is plenty
    s.set_keep_alive_max_count(1);
    s.set_read_timeout(2, 0);
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
    thread_ = std::thread([this] { server_->listen_after_bind(); });
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
}

HealthServer::~HealthServer() {
    server_->stop();
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
