// ConnectParams: the DSN's host list, rotated past a host that never answered,
// and the connect_timeout each host gets. No server needed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "connection.hpp"
#include "singleton_lock/errors.hpp"

namespace singleton_lock::pq {
namespace {

using namespace std::chrono_literals;

// The DSNs below say everything; PG* variables of the test's environment
// (make test sets PGHOST, PGPORT) would fill in what they leave out.
class ConnectParamsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        for (const char* v : kVars) {
            if (const char* value = std::getenv(v)) saved_.emplace_back(v, value);
            unsetenv(v);
        }
    }
    void TearDown() override {
        for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
    }

  private:
    static constexpr const char* kVars[] = {"PGHOST",  "PGHOSTADDR",   "PGPORT",
                                            "PGCONNECT_TIMEOUT", "PGSERVICE", "PGGSSENCMODE"};
    std::vector<std::pair<std::string, std::string>> saved_;
};

// The value libpq would use for `keyword`: the last one in the arrays (the
// DSN, under dbname, is expanded in place; later entries override it).
std::string last(const ConnectParams& p, const std::string& keyword) {
    std::string value = "<unset>";
    for (int i = 0; p.keywords()[i] != nullptr; ++i)
        if (keyword == p.keywords()[i]) value = p.values()[i];
    return value;
}

// The default gssencmode=disable (kerberos_signs.hpp) yields to the DSN, its
// service file (whose settings libpq applies only where nothing else is set)
// and PGGSSENCMODE; a Kerberos service name in the DSN keeps libpq's probe.
TEST_F(ConnectParamsTest, SkippingTheGssProbeYieldsToTheUser) {
    const std::vector<std::pair<std::string, std::string>> d = {{"gssencmode", "disable"}};
    EXPECT_EQ(last(ConnectParams("host=a dbname=app", d), "gssencmode"), "disable");
    EXPECT_EQ(last(ConnectParams("service=prod", d), "gssencmode"), "<unset>");
    EXPECT_EQ(last(ConnectParams("host=a krbsrvname=pg", d), "gssencmode"), "<unset>");
    setenv("PGSERVICE", "prod", 1);
    EXPECT_EQ(last(ConnectParams("host=a", d), "gssencmode"), "<unset>");
    unsetenv("PGSERVICE");
    setenv("PGGSSENCMODE", "require", 1);
    EXPECT_EQ(last(ConnectParams("host=a", d), "gssencmode"), "<unset>");
    unsetenv("PGGSSENCMODE");
    // The DSN's own setting comes after the defaults (expand_dbname): it wins.
    const ConnectParams own("host=a gssencmode=require", d);
    EXPECT_EQ(last(own, "dbname"), "host=a gssencmode=require");
}

TEST_F(ConnectParamsTest, RotatesHostsAndPerHostPorts) {
    ConnectParams p("host=a,b,c port=1,2,3 dbname=app target_session_attrs=read-write", {});
    ASSERT_EQ(p.host_count(), 3u);
    EXPECT_EQ(last(p.starting_at(0), "host"), "<unset>");  // the DSN as written
    const ConnectParams r = p.starting_at(1);
    EXPECT_EQ(last(r, "host"), "b,c,a");
    EXPECT_EQ(last(r, "port"), "2,3,1");
    EXPECT_EQ(last(r, "dbname"),
              "host=a,b,c port=1,2,3 dbname=app target_session_attrs=read-write");
}

TEST_F(ConnectParamsTest, OneCommonPortIsLeftAlone) {
    ConnectParams p("host=a,b port=5432", {});
    EXPECT_EQ(last(p.starting_at(1), "host"), "b,a");
    EXPECT_EQ(last(p.starting_at(1), "port"), "<unset>");
}

TEST_F(ConnectParamsTest, UriAndHostaddrLists) {
    ConnectParams uri("postgresql://a:1,b:2/app", {});
    ASSERT_EQ(uri.host_count(), 2u);
    EXPECT_EQ(last(uri.starting_at(1), "host"), "b,a");
    EXPECT_EQ(last(uri.starting_at(1), "port"), "2,1");
    ConnectParams addr("hostaddr=10.0.0.1,10.0.0.2", {});
    EXPECT_EQ(last(addr.starting_at(1), "hostaddr"), "10.0.0.2,10.0.0.1");
    EXPECT_EQ(last(addr.starting_at(1), "host"), "<unset>");
    EXPECT_EQ(addr.find_host("10.0.0.2", "5432"), 1u);
}

TEST_F(ConnectParamsTest, FindsTheSilentHostAndRotatesPastIt) {
    ConnectParams p("host=h,h,k port=1,2,1", {});
    EXPECT_EQ(p.find_host("h", "2"), 1u);
    EXPECT_EQ(p.find_host("k", "1"), 2u);
    EXPECT_EQ(p.find_host("x", "1"), std::nullopt);
    EXPECT_EQ(p.first_host(), 0u);
    p.rotate_after(1);
    EXPECT_EQ(p.first_host(), 2u);
    p.rotate_after(2);
    EXPECT_EQ(p.first_host(), 0u);
}

TEST_F(ConnectParamsTest, ListsThatDoNotLineUpAreLeftToLibpq) {
    ConnectParams p("host=a,b port=1,2,3", {});
    EXPECT_EQ(p.host_count(), 0u);
    EXPECT_EQ(last(p.starting_at(1), "host"), "<unset>");
}

TEST_F(ConnectParamsTest, ConnectTimeoutAsLibpqWouldUseIt) {
    EXPECT_EQ(ConnectParams("host=a", {{"connect_timeout", "5"}}).connect_timeout(), 5s);
    EXPECT_EQ(
        ConnectParams("host=a connect_timeout=3", {{"connect_timeout", "5"}}).connect_timeout(),
        3s);
    EXPECT_EQ(ConnectParams("host=a connect_timeout=1", {}).connect_timeout(),
              2s);  // libpq's floor
    EXPECT_EQ(
        ConnectParams("host=a connect_timeout=0", {{"connect_timeout", "5"}}).connect_timeout(),
        std::nullopt);
    EXPECT_EQ(ConnectParams("host=a", {}).connect_timeout(), std::nullopt);
}

// A DSN libpq cannot parse never connects: a usage error naming libpq's
// reason, at once (before: "database unavailable", retried forever).
TEST_F(ConnectParamsTest, ADsnLibpqCannotParseIsAUsageError) {
    const std::pair<const char*, const char*> cases[] = {
        {"host=a password=x unterminated='x", "unterminated quoted string"},
        {"postgresql://u@h:1/db?badopt=1", "invalid URI query parameter: \"badopt\""},
        {"hots=a", "invalid connection option \"hots\""},
        {"host", "missing \"=\" after \"host\""},
    };
    for (const auto& [dsn, reason] : cases) {
        try {
            ConnectParams p(dsn, {});
            ADD_FAILURE() << "accepted: " << dsn;
        } catch (const UsageError& e) {
            const std::string message = e.what();
            EXPECT_EQ(message.rfind("invalid connection string: ", 0), 0u) << message;
            EXPECT_NE(message.find(reason), std::string::npos) << message;
            EXPECT_NE(message.back(), '\n') << "(a log line of its own)";
        }
    }
    EXPECT_NO_THROW(ConnectParams("", {}));  // (the PG* environment)
    EXPECT_NO_THROW(ConnectParams("postgresql:///db?host=/tmp&port=5433", {}));
}

}  // namespace
}  // namespace singleton_lock::pq
