// Loads singleton-lock-health.so (health_endpoint.hpp says why it is a module)
// and opens the health endpoint. The module is looked for next to the running
// executable first (a build tree, a relocated install), then in the directory
// it was installed to (SL_HEALTH_MODULE_DIR, from meson's libdir).
#pragma once

#include <memory>
#include <string>

#include "health_endpoint.hpp"

namespace singleton_lock::cli {

// Loading runs the libraries' initialisers (libmicrohttpd's): do it before
// the supervising process is forked, which then shares the pages they write
// instead of keeping its own copies of them.
class HealthModule {
  public:
    HealthModule();  // throws std::runtime_error naming the module and the reason
    // Binds and starts the endpoint's threads; throws std::runtime_error.
    std::unique_ptr<HealthEndpoint> open(const std::string& host, int port,
                                         const HealthSource& source) const;

  private:
    decltype(&singleton_lock_health_open_v1) open_;
};

}  // namespace singleton_lock::cli
