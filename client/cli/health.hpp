// HTTP health endpoint of `singleton-lock run` (cpp-httplib), read-only over a
// HealthSource:
//   GET /livez    200 while the process's loop goes round, else 503 (liveness)
//   GET /readyz   200 "leader" while leading, else 503 "standby" (readiness)
//   GET /leader   the same as /readyz
//   GET /healthz  200 "leader" or "standby" (a standby that reached the database
//                 recently), else 503 "unreachable"
//   GET /metrics  Prometheus text format
// Two small threads (the listener and one worker: one connection at a time;
// at exit the open ones are shut down). Built into the module
// singleton-lock-health.so only (health_endpoint.hpp says why); the command
// reaches it through health_module.hpp.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "health_endpoint.hpp"

namespace httplib {
class Server;
}

namespace singleton_lock::cli {

class HealthServer final : public HealthEndpoint {
  public:
    // Binds at once (port 0: any free port); throws std::runtime_error when it cannot.
    HealthServer(const std::string& host, int port, const HealthSource& source);
    ~HealthServer() override;
    HealthServer(const HealthServer&) = delete;
    HealthServer& operator=(const HealthServer&) = delete;
    int port() const override { return port_; }

  private:
    void routes(const HealthSource& source);
    void refuse_other_methods();
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
    std::atomic<bool> served_{false};  // the listener and its worker are done
    int port_ = 0;
};

}  // namespace singleton_lock::cli
