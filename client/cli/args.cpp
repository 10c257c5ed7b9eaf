#include "args.hpp"

#include <CLI/CLI.hpp>

#include <charconv>
#include <sstream>

#include "exit_codes.hpp"
#include "singleton_lock/errors.hpp"
#include "singleton_lock/timing.hpp"

// The version is the extension's default_version (its control file), passed in by the build.
#ifndef SINGLETON_LOCK_VERSION
#error "SINGLETON_LOCK_VERSION must be defined by the build (meson.build reads the control file)"
#endif

namespace singleton_lock::cli {

HealthAddr parse_health_addr(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
        throw UsageError("--health-addr must be HOST:PORT (got '" + text + "')");
    HealthAddr a;
    a.host = text.substr(0, colon);
    if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']')
        a.host = a.host.substr(1, a.host.size() - 2);
    const std::string port = text.substr(colon + 1);
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) > 65535)
        throw UsageError("--health-addr: invalid port '" + port + "'");
    a.port = std::stoi(port);
    return a;
}

namespace {

// Durations and addresses as typed; checked after CLI11 has parsed.
struct RunText {
    std::string ttl = "10s", grace, wait = "forever", health, priority = "0";
};

// A whole number in the range of the SQL integer type. Throws UsageError.
int parse_priority(const std::string& text) {
    int value = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end)
        throw UsageError("--priority must be a whole number from -2147483648 to 2147483647 (got '" +
                         text + "')");
    return value;
}

CLI::App* add_run(CLI::App& app, RunArgs& r, RunText& t) {
    auto* run = app.add_subcommand("run", "wait for the lease, then run COMMAND while holding it");
    run->add_option("--name,-n", r.name, "lease name")->required();
    run->add_option("--dsn,-d", r.dsn, "libpq connection string or URI (default: PG* environment)");
    run->add_option("--ttl", t.ttl, "lease time to live (250ms, 10s, 2m, 1h)")
        ->capture_default_str();
    run->add_option("--holder", r.holder, "holder id (default: hostname:pid:random; a credential)");
    run->add_option("--wait", t.wait, "how long to wait as standby: DURATION or forever")
        ->capture_default_str();
    run->add_option("--grace", t.grace,
                    "SIGTERM->SIGKILL grace for COMMAND (default ttl/4, < ttl/2)");
    run->add_option("--health-addr", t.health,
                    "serve /livez /readyz /healthz /leader /metrics on HOST:PORT");
    run->add_option("--schema", r.schema,
                    "schema of the extension (default: the one it is installed in)");
    run->add_option("--priority", t.priority,
                    "integer (default 0; extension 1.1): the highest waiting priority gets the "
                    "lease, and a standby of higher priority than the leader's makes it step down")
        ->capture_default_str();
    run->add_flag("--warm", r.warm,
                  "start COMMAND at once, while standby; it must wait for the line "
                  "'leader TOKEN' on the descriptor SINGLETON_LOCK_LEADER_FD names before "
                  "doing leader work");
    run->add_option("command", r.command, "COMMAND [ARGS...] (after --)")->required();
    return run;
}

CLI::App* add_status(CLI::App& app, StatusArgs& s) {
    auto* status =
        app.add_subcommand("status", "show leases (view singleton_leases; administrators)");
    status->add_option("--name,-n", s.name, "only this lease");
    status->add_option("--dsn,-d", s.dsn, "libpq connection string or URI");
    status->add_option("--schema", s.schema, "schema of the extension");
    return status;
}

void add_release(CLI::App& app, ReleaseArgs& r, bool& force) {
    auto* release = app.add_subcommand("release", "free a lease whoever holds it (administrators)");
    release->add_option("--name,-n", r.name, "lease name")->required();
    release->add_flag("--force", force, "required: this ends the current holder's tenure")
        ->required();
    release->add_option("--dsn,-d", r.dsn, "libpq connection string or URI");
    release->add_option("--schema", r.schema, "schema of the extension");
}

CLI::App* add_pause(CLI::App& app, PauseArgs& p, bool resume) {
    auto* cmd = resume ? app.add_subcommand("resume",
                                            "end a pause: hand the lease to the best waiting "
                                            "standby at once (administrators; extension 1.1)")
                       : app.add_subcommand("pause",
                                            "end the current tenure and let nobody lead until "
                                            "resume (administrators; extension 1.1)");
    cmd->add_option("--name,-n", p.name, "lease name")->required();
    if (!resume)
        cmd->add_option("--reason", p.reason, "why (shown by status and the view)")->required();
    cmd->add_option("--dsn,-d", p.dsn, "libpq connection string or URI");
    cmd->add_option("--schema", p.schema, "schema of the extension");
    return cmd;
}

// Throws UsageError.
void check_run(RunArgs& r, const RunText& t) {
    r.ttl = parse_duration(t.ttl);
    if (!t.grace.empty()) r.grace = parse_duration(t.grace);
    r.wait = parse_wait(t.wait);
    try {
        r.grace = make_timing(r.ttl, r.grace).grace;  // validates the ttl and grace < ttl/2
    } catch (const UsageError& e) {
        throw UsageError(std::string("--ttl/--grace: ") + e.what());
    }
    if (!t.health.empty()) r.health = parse_health_addr(t.health);
    r.priority = parse_priority(t.priority);
    if (r.name.empty()) throw UsageError("--name must not be empty");
}

Parsed usage_error(const std::string& message) {
    Parsed p;
    p.kind = Parsed::Kind::exit;
    p.exit_code = exit_code::usage;
    p.err = "singleton-lock: " + message + "\nRun with --help for more information.\n";
    return p;
}

}  // namespace

Parsed parse_args(int argc, const char* const* argv) {
    CLI::App app{
        "singleton-lock: run COMMAND only while holding a PostgreSQL singleton_lock lease"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "singleton-lock " SINGLETON_LOCK_VERSION);
    app.footer(
        "Exit codes: COMMAND's status (128+N if it died of signal N); 1 error; 2 usage error;\n"
        "3 lease lost; 4 release --force found nothing to free, resume found no pause;\n"
        "75 --wait ran out;\n"
        "126/127 COMMAND not executable / not found; 128+N stopped by signal N while standby.");
    Parsed p;
    RunText text;
    bool force = false;
    auto* run = add_run(app, p.run, text);
    auto* status = add_status(app, p.status);
    add_release(app, p.release, force);
    auto* pause = add_pause(app, p.pause, false);
    auto* resume = add_pause(app, p.pause, true);
    std::ostringstream out, err;
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        p.exit_code = app.exit(e, out, err) == 0 ? 0 : exit_code::usage;
        p.out = out.str();
        p.err = err.str();
        return p;
    }
    try {
        if (run->parsed()) {
            p.kind = Parsed::Kind::run;
            check_run(p.run, text);
        } else if (status->parsed()) {
            p.kind = Parsed::Kind::status;
        } else if (pause->parsed() || resume->parsed()) {
            p.kind = pause->parsed() ? Parsed::Kind::pause : Parsed::Kind::resume;
            if (p.pause.name.empty()) throw UsageError("--name must not be empty");
        } else {
            p.kind = Parsed::Kind::release;
            if (p.release.name.empty()) throw UsageError("--name must not be empty");
        }
    } catch (const UsageError& e) {
        return usage_error(e.what());
    }
    return p;
}

}  // namespace singleton_lock::cli
