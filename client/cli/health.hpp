// HTTP health endpoint of `singleton-lock run` (GNU libmicrohttpd), read-only
// over a HealthSource:
//   GET /livez    200 while the process's loop goes round, else 503 (liveness)
//   GET /readyz   200 "leader" while leading, else 503 "standby" (readiness)
//   GET /leader   the same as /readyz
//   GET /healthz  200 "leader" or "standby" (a standby that reached the database
//                 recently), else 503 "unreachable"
//   GET /metrics  Prometheus text format
// One thread polls every connection, each within a fixed memory budget (a
// request body is never read). Built into the module singleton-lock-health.so
// only (health_endpoint.hpp says why); the command reaches it through
// health_module.hpp.
#pragma once

#include <string>

#include "health_endpoint.hpp"

struct MHD_Daemon;

namespace singleton_lock::cli {

class HealthServer final : public HealthEndpoint {
  public:
    // Binds at once (port 0: any free port); throws std::runtime_error when it cannot.
    HealthServer(const std::string& host, int port, const HealthSource& source);
    ~HealthServer() override;  // closes every connection and joins the thread
    HealthServer(const HealthServer&) = delete;
    HealthServer& operator=(const HealthServer&) = delete;
    int port() const override { return port_; }

  private:
    MHD_Daemon* daemon_ = nullptr;
    int port_ = 0;
};

}  // namespace singleton_lock::cli
