// Command line of singleton-lock (CLI11), parsed into plain structs. Never
// exits the process: help and usage errors come back as an exit code + text,
// so the parser is unit-tested.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "singleton_lock/duration.hpp"

namespace singleton_lock::cli {

struct HealthAddr {
    std::string host;
    int port = 0;
};

struct RunArgs {
    std::string name, dsn, holder, schema;
    Duration ttl{std::chrono::seconds(10)};
    std::optional<Duration> grace;  // resolved: ttl/4 when not given
    std::optional<Duration> wait;   // nullopt: forever
    std::optional<HealthAddr> health;
    int priority = 0;   // extension 1.1: the highest waiting priority leads; a higher one preempts
    bool warm = false;  // COMMAND starts while standby; told on SINGLETON_LOCK_LEADER_FD when it leads
    std::vector<std::string> command;
};

struct StatusArgs {
    std::optional<std::string> name;
    std::string dsn, schema;
};

struct ReleaseArgs {
    std::string name, dsn, schema;
};

// pause (reason set) and resume (reason unused).
struct PauseArgs {
    std::string name, reason, dsn, schema;
};

struct Parsed {
    enum class Kind { run, status, release, pause, resume, exit } kind = Kind::exit;
    RunArgs run;
    StatusArgs status;
    ReleaseArgs release;
    PauseArgs pause;  // pause and resume
    int exit_code = 0;  // Kind::exit: 0 after --help/--version, 2 on usage errors
    std::string out;    // Kind::exit: text for stdout (help)
    std::string err;    // Kind::exit: text for stderr (errors)
};

Parsed parse_args(int argc, const char* const* argv);

HealthAddr parse_health_addr(const std::string& text);  // throws UsageError

}  // namespace singleton_lock::cli
