// Command-line parsing and usage errors of singleton-lock.
#include "args.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <vector>

#include "exit_codes.hpp"

namespace singleton_lock::cli {
namespace {

using namespace std::chrono_literals;

Parsed parse(std::initializer_list<const char*> args) {
    std::vector<const char*> argv = {"singleton-lock"};
    argv.insert(argv.end(), args.begin(), args.end());
    return parse_args(static_cast<int>(argv.size()), argv.data());
}

TEST(CliArgs, RunWithEveryFlag) {
    const Parsed p = parse({"run", "--name", "bot", "--dsn", "dbname=x", "--ttl", "3s", "--holder",
                            "h1", "--wait", "1m", "--grace", "500ms", "--health-addr",
                            "127.0.0.1:8080", "--", "sleep", "--flag", "10"});
    ASSERT_EQ(p.kind, Parsed::Kind::run) << p.err;
    EXPECT_EQ(p.run.name, "bot");
    EXPECT_EQ(p.run.dsn, "dbname=x");
    EXPECT_EQ(p.run.ttl, 3s);
    EXPECT_EQ(p.run.holder, "h1");
    EXPECT_EQ(p.run.wait, std::optional<Duration>(1min));
    EXPECT_EQ(p.run.grace, std::optional<Duration>(500ms));
    ASSERT_TRUE(p.run.health);
    EXPECT_EQ(p.run.health->host, "127.0.0.1");
    EXPECT_EQ(p.run.health->port, 8080);
    EXPECT_EQ(p.run.command, (std::vector<std::string>{"sleep", "--flag", "10"}));
}

TEST(CliArgs, RunDefaults) {
    const Parsed p = parse({"run", "--name", "bot", "--", "true"});
    ASSERT_EQ(p.kind, Parsed::Kind::run) << p.err;
    EXPECT_EQ(p.run.ttl, 10s);
    EXPECT_EQ(p.run.grace, std::optional<Duration>(2500ms));  // ttl/4
    EXPECT_EQ(p.run.wait, std::nullopt);                      // forever
    EXPECT_FALSE(p.run.health);
    EXPECT_TRUE(p.run.dsn.empty());
}

TEST(CliArgs, GraceOfHalfTheTtlIsAUsageError) {
    const Parsed p = parse({"run", "--name", "bot", "--ttl", "10s", "--grace", "5s", "--", "true"});
    EXPECT_EQ(p.kind, Parsed::Kind::exit);
    EXPECT_EQ(p.exit_code, exit_code::usage);
    EXPECT_NE(p.err.find("grace"), std::string::npos) << p.err;
}

TEST(CliArgs, UsageErrorsExitWith2) {
    const std::vector<std::vector<const char*>> cases = {
        {},                                                                 // no subcommand
        {"frobnicate"},                                                     // unknown subcommand
        {"run", "--", "true"},                                              // no --name
        {"run", "--name", "bot"},                                           // no COMMAND
        {"run", "--name", "bot", "--ttl", "10", "--", "true"},              // no unit
        {"run", "--name", "bot", "--ttl", "50ms", "--", "true"},            // below the floor
        {"run", "--name", "bot", "--ttl", "99999999999h", "--", "true"},    // overflows
        {"run", "--name", "bot", "--wait", "99999999999h", "--", "true"},   // overflows
        {"run", "--name", "bot", "--grace", "99999999999h", "--", "true"},  // overflows
        {"run", "--name", "bot", "--wait", "soon", "--", "true"},           // bad wait
        {"run", "--name", "bot", "--grace", "-1s", "--", "true"},           // negative
        {"run", "--name", "", "--", "true"},                                // empty name
        {"run", "--name", "bot", "--health-addr", "8080", "--", "true"},
        {"run", "--name", "bot", "--health-addr", "localhost:99999", "--", "true"},
        {"run", "--name", "bot", "--bogus", "--", "true"},
        {"release", "--name", "bot"},  // --force is required
        {"release", "--force"},        // --name is required
    };
    for (const auto& c : cases) {
        std::vector<const char*> argv = {"singleton-lock"};
        argv.insert(argv.end(), c.begin(), c.end());
        const Parsed p = parse_args(static_cast<int>(argv.size()), argv.data());
        std::string joined;
        for (const char* a : c) joined += std::string(a) + " ";
        EXPECT_EQ(p.kind, Parsed::Kind::exit) << joined;
        EXPECT_EQ(p.exit_code, exit_code::usage) << joined;
        EXPECT_FALSE(p.err.empty()) << joined;
    }
}

TEST(CliArgs, HelpEverywhere) {
    for (auto args : {std::vector<const char*>{"--help"},
                      {"run", "--help"},
                      {"status", "--help"},
                      {"release", "--help"}}) {
        std::vector<const char*> argv = {"singleton-lock"};
        argv.insert(argv.end(), args.begin(), args.end());
        const Parsed p = parse_args(static_cast<int>(argv.size()), argv.data());
        EXPECT_EQ(p.kind, Parsed::Kind::exit);
        EXPECT_EQ(p.exit_code, 0);
        EXPECT_NE(p.out.find("--"), std::string::npos) << p.out;
    }
}

TEST(CliArgs, StatusAndRelease) {
    Parsed p = parse({"status"});
    ASSERT_EQ(p.kind, Parsed::Kind::status);
    EXPECT_FALSE(p.status.name);
    p = parse({"status", "--name", "bot", "--dsn", "host=x"});
    ASSERT_EQ(p.kind, Parsed::Kind::status);
    EXPECT_EQ(p.status.name, std::optional<std::string>("bot"));
    EXPECT_EQ(p.status.dsn, "host=x");
    p = parse({"release", "--name", "bot", "--force"});
    ASSERT_EQ(p.kind, Parsed::Kind::release);
    EXPECT_EQ(p.release.name, "bot");
}

TEST(CliArgs, HealthAddr) {
    EXPECT_EQ(parse_health_addr("[::1]:9000").host, "::1");
    EXPECT_EQ(parse_health_addr("0.0.0.0:0").port, 0);
}

}  // namespace
}  // namespace singleton_lock::cli
