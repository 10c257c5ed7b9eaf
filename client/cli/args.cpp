#include "args.hpp"

#include <CLI/CLI.hpp>

#include <sstream>

#include "policy.hpp"
#include "exit_codes.hpp"
#include "singleton_lock/errors.hpp"

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

Parsed parse_args(int argc, const char* const* argv) {
    CLI::App app{
        "singleton-lock: run COMMAND only while holding a PostgreSQL singleton_lock lease"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "singleton-lock 1.0");
    app.footer(
        "Exit codes: COMMAND's status (128+N if it died of signal N); 1 error; 2 usage error;\n"
        "3 lease lost; 4 release --force found nothing to free; 75 --wait ran out;\n"
        "126/127 COMMAND not executable / not found; 128+N stopped by signal N while standby.");

    Parsed p;
    std::string ttl = "10s", grace, wait = "forever", health;

    auto* run = app.add_subcommand("run", "wait for the lease, then run COMMAND while holding it");
    run->add_option("--name,-n", p.run.name, "lease name")->required();
    run->add_option("--dsn,-d", p.run.dsn,
                    "libpq connection string or URI (default: PG* environment)");
    run->add_option("--ttl", ttl, "lease time to live (250ms, 10s, 2m, 1h)")->capture_default_str();
    run->add_option("--holder", p.run.holder,
                    "holder id (default: hostname:pid:random; a credential)");
    run->add_option("--wait", wait, "how long to wait as standby: DURATION or forever")
        ->capture_default_str();
    run->add_option("--grace", grace,
                    "SIGTERM->SIGKILL grace for COMMAND (default ttl/4, < ttl/2)");
    run->add_option("--health-addr", health, "serve GET /healthz and /leader on HOST:PORT");
    run->add_option("--schema", p.run.schema, "schema of the extension (default: search_path)");
    run->add_option("command", p.run.command, "COMMAND [ARGS...] (after --)")->required();

    auto* status =
        app.add_subcommand("status", "show leases (view singleton_leases; administrators)");
    status->add_option("--name,-n", p.status.name, "only this lease");
    status->add_option("--dsn,-d", p.status.dsn, "libpq connection string or URI");
    status->add_option("--schema", p.status.schema, "schema of the extension");

    bool force = false;
    auto* release = app.add_subcommand("release", "free a lease whoever holds it (administrators)");
    release->add_option("--name,-n", p.release.name, "lease name")->required();
    release->add_flag("--force", force, "required: this ends the current holder's tenure")
        ->required();
    release->add_option("--dsn,-d", p.release.dsn, "libpq connection string or URI");
    release->add_option("--schema", p.release.schema, "schema of the extension");

    std::ostringstream out, err;
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        p.kind = Parsed::Kind::exit;
        p.exit_code = app.exit(e, out, err);
        if (p.exit_code != 0) p.exit_code = exit_code::usage;
        p.out = out.str();
        p.err = err.str();
        return p;
    }

    try {
        if (run->parsed()) {
            p.kind = Parsed::Kind::run;
            p.run.ttl = parse_duration(ttl);
            if (!grace.empty()) p.run.grace = parse_duration(grace);
            p.run.wait = parse_wait(wait);
            const auto timing =
                policy::make_timing(p.run.ttl, p.run.grace);  // validates grace < ttl/2
            p.run.grace = timing.grace;
            if (!health.empty()) p.run.health = parse_health_addr(health);
            if (p.run.name.empty()) throw UsageError("--name must not be empty");
        } else if (status->parsed()) {
            p.kind = Parsed::Kind::status;
        } else {
            p.kind = Parsed::Kind::release;
            if (p.release.name.empty()) throw UsageError("--name must not be empty");
        }
    } catch (const UsageError& e) {
        p.kind = Parsed::Kind::exit;
        p.exit_code = exit_code::usage;
        p.err = std::string("singleton-lock: ") + e.what() +
                "\nRun with --help for more information.\n";
    }
    return p;
}

}  // namespace singleton_lock::cli
