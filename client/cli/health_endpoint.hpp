// The boundary between `singleton-lock` and its health endpoint's module
// (singleton-lock-health.so), which is loaded only when --health-addr is given,
// so that an instance without it has no HTTP server in memory at all (with
// cpp-httplib, until 1.1, this also spared it OpenSSL's initialisation: 4-6 ms
// of CPU at start, 0.7 MiB of a standby's PSS). Both sides are built from this header in
// one build; the entry point's name carries this interface's version and the
// call checks the release's, so a module of another release is refused.
#pragma once

#include <cstddef>
#include <string>

namespace singleton_lock::cli {

// What the endpoint reports; implemented by RunStatus, read from the
// endpoint's threads.
class HealthSource {
  public:
    enum class Health { leader, standby, unreachable };
    virtual bool alive() const = 0;            // /livez
    virtual bool leader() const = 0;           // /readyz, /leader
    virtual Health health() const = 0;         // /healthz
    virtual std::string metrics() const = 0;   // /metrics, Prometheus text format 0.0.4

  protected:
    ~HealthSource() = default;
};

// A listening endpoint; its destructor stops it and joins its threads.
class HealthEndpoint {
  public:
    virtual ~HealthEndpoint() = default;
    virtual int port() const = 0;  // the bound port (port 0 asked for any)
};

}  // namespace singleton_lock::cli

// The module's one exported symbol (it is built with hidden visibility).
// Returns nullptr with a message in error (never throws) when it cannot listen
// or build_version is not the module's own.
#define SINGLETON_LOCK_HEALTH_ENTRY "singleton_lock_health_open_v1"
extern "C" __attribute__((visibility("default"))) singleton_lock::cli::HealthEndpoint*
singleton_lock_health_open_v1(
    const char* build_version, const char* host, int port,
    const singleton_lock::cli::HealthSource* source, char* error, std::size_t error_size);
