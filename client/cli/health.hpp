// HTTP health endpoint (cpp-httplib): GET /healthz -> 200 "leader"|"standby",
// GET /leader -> 200 only while leader, else 503. Two small threads.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace singleton_lock::cli {

class HealthServer {
  public:
    // Binds at once (port 0: any free port); throws std::runtime_error when it cannot.
    HealthServer(const std::string& host, int port, const std::atomic<bool>& leader);
    ~HealthServer();
    HealthServer(const HealthServer&) = delete;
    HealthServer& operator=(const HealthServer&) = delete;
    int port() const { return port_; }

  private:
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
    int port_ = 0;
};

}  // namespace singleton_lock::cli
