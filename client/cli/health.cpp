#include "health.hpp"

#include <httplib.h>

#include <stdexcept>

namespace singleton_lock::cli {

HealthServer::HealthServer(const std::string& host, int port, const std::atomic<bool>& leader)
    : server_(std::make_unique<httplib::Server>()) {
    auto& s = *server_;
    s.new_task_queue = [] { return new httplib::ThreadPool(1); };  // RSS: one worker is plenty
    s.set_keep_alive_max_count(1);
    s.set_read_timeout(2, 0);
    s.set_write_timeout(2, 0);
    s.Get("/healthz", [&leader](const httplib::Request&, httplib::Response& res) {
        res.set_content(leader.load() ? "leader\n" : "standby\n", "text/plain");
    });
    s.Get("/leader", [&leader](const httplib::Request&, httplib::Response& res) {
        const bool yes = leader.load();
        res.status = yes ? 200 : 503;
        res.set_content(yes ? "leader\n" : "standby\n", "text/plain");
    });
    if (port == 0) {
        port_ = s.bind_to_any_port(host);
        if (port_ <= 0) throw std::runtime_error("cannot listen on " + host + ":0");
    } else {
        if (!s.bind_to_port(host, port))
            throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port));
        port_ = port;
    }
    thread_ = std::thread([this] { server_->listen_after_bind(); });
}

HealthServer::~HealthServer() {
    server_->stop();
    if (thread_.joinable()) thread_.join();
}

}  // namespace singleton_lock::cli
