// ConnectParams: the DSN's host list, entries that never answered set aside,
// and the connect_timeout each host gets. No server needed.
#include <gtest/gtest.h>
#include <poll.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "connect_params.hpp"
#include "name_lookup.hpp"
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
    static constexpr const char* kVars[] = {
        "PGHOST",       "PGHOSTADDR",       "PGPORT",   "PGCONNECT_TIMEOUT", "PGSERVICE",
        "PGGSSENCMODE", "PGCHANNELBINDING", "PGSSLMODE", "PGTARGETSESSIONATTRS"};
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

TEST_F(ConnectParamsTest, SetsASilentHostAsideWithItsPort) {
    ConnectParams p("host=a,b,c port=1,2,3 dbname=app target_session_attrs=read-write", {});
    ASSERT_EQ(p.entry_count(), 3u);
    EXPECT_EQ(last(p.for_libpq(), "host"), "<unset>");  // the DSN as written
    p.set_aside("a", "10.0.0.1", "1");  // (PQhostaddr: the address libpq found for a)
    const ConnectParams r = p.for_libpq();
    EXPECT_EQ(last(r, "host"), "b,c,a");
    EXPECT_EQ(last(r, "port"), "2,3,1");
    EXPECT_EQ(last(r, "dbname"),
              "host=a,b,c port=1,2,3 dbname=app target_session_attrs=read-write");
}

TEST_F(ConnectParamsTest, OneCommonPortIsLeftAlone) {
    ConnectParams p("host=a,b port=5432", {});
    p.set_aside("a", "", "5432");
    EXPECT_EQ(last(p.for_libpq(), "host"), "b,a");
    EXPECT_EQ(last(p.for_libpq(), "port"), "<unset>");
}

TEST_F(ConnectParamsTest, UriAndHostaddrLists) {
    ConnectParams uri("postgresql://a:1,b:2/app", {});
    ASSERT_EQ(uri.entry_count(), 2u);
    uri.set_aside("a", "", "1");
    EXPECT_EQ(last(uri.for_libpq(), "host"), "b,a");
    EXPECT_EQ(last(uri.for_libpq(), "port"), "2,1");
    ConnectParams addr("hostaddr=10.0.0.1,10.0.0.2", {});
    addr.set_aside("10.0.0.1", "10.0.0.1", "5432");  // (PQhost reports the hostaddr)
    EXPECT_EQ(last(addr.for_libpq(), "hostaddr"), "10.0.0.2,10.0.0.1");
    EXPECT_EQ(last(addr.for_libpq(), "host"), "<unset>");
}

// The names a connect would look up (on the session's thread, name_lookup.hpp):
// not sockets, numeric addresses or hosts with a hostaddr; each once; and
// whether they are the only way in (then a lookup that fails fails the attempt).
TEST_F(ConnectParamsTest, NamesToLookUp) {
    using Names = std::vector<std::string>;
    const auto names = ConnectParams("host=db1.test,db2.test,db1.test port=1,2,3", {})
                           .names_to_look_up();
    EXPECT_EQ(names.names, (Names{"db1.test", "db2.test"}));
    EXPECT_TRUE(names.only_names);
    const auto mixed = ConnectParams("host=/tmp,db.test,10.0.0.1,::1,@abstract port=1,2,3,4,5", {})
                           .names_to_look_up();
    EXPECT_EQ(mixed.names, (Names{"db.test"}));
    EXPECT_FALSE(mixed.only_names);  // the socket is another way in
    const auto with_addr = ConnectParams("host=a.test,b.test hostaddr=10.0.0.1,", {})
                               .names_to_look_up();
    EXPECT_EQ(with_addr.names, (Names{"b.test"}));
    EXPECT_FALSE(with_addr.only_names);
    EXPECT_TRUE(ConnectParams("dbname=app", {}).names_to_look_up().names.empty());  // default socket
    EXPECT_TRUE(ConnectParams("hostaddr=10.0.0.1", {}).names_to_look_up().names.empty());
    setenv("PGHOST", "env.test", 1);  // (TearDown restores it)
    EXPECT_EQ(ConnectParams("dbname=app", {}).names_to_look_up().names, (Names{"env.test"}));
}

// A lookup signals its fd when done (localhost: from /etc/hosts; "" fails at
// once: no DNS either way), and hands over the numeric addresses it found.
TEST(NameLookup, SignalsItsFdWhenDone) {
    NameLookup lookup({"localhost", ""});
    pollfd p{lookup.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1);
    EXPECT_TRUE(lookup.done());
    EXPECT_FALSE(lookup.all_failed().has_value());
    const auto found = lookup.found();
    ASSERT_EQ(found.size(), 2u);
    EXPECT_EQ(found[0].first, "localhost");
    ASSERT_FALSE(found[0].second.empty());
    for (const auto& a : found[0].second)
        EXPECT_TRUE(a == "127.0.0.1" || a == "::1") << a;
    EXPECT_EQ(found[1].first, "");
    EXPECT_TRUE(found[1].second.empty());
    EXPECT_EQ(lookup.failures().rfind("could not translate host name \"\" to address: ", 0), 0u)
        << lookup.failures();
    EXPECT_EQ(lookup.failures().find('\n'), std::string::npos);  // (localhost is not among them)
}

// After a lookup, libpq is given every address as an entry of its own (and
// so never asks the resolver again), the name kept for TLS, Kerberos and the
// password file; a name that was not found is left out while others remain.
TEST_F(ConnectParamsTest, ConnectsToTheAddressesALookupFound) {
    ConnectParams p("host=db.test,/tmp,gone.test port=1,2,3 dbname=app", {});
    p.use_addresses({{"db.test", {"10.0.0.1", "fd00::1"}}, {"gone.test", {}}});
    const ConnectParams r = p.for_libpq();
    EXPECT_EQ(last(r, "host"), "db.test,db.test,/tmp");
    EXPECT_EQ(last(r, "hostaddr"), "10.0.0.1,fd00::1,");
    EXPECT_EQ(last(r, "port"), "1,1,2");
    EXPECT_EQ(p.entry_count(), 3u);
    // One common port stays one; a name given a hostaddr in the DSN is kept as written.
    ConnectParams q("host=db.test,other.test hostaddr=,10.0.0.9 port=5433", {});
    q.use_addresses({{"db.test", {"10.0.0.1"}}});
    EXPECT_EQ(last(q.for_libpq(), "host"), "db.test,other.test");
    EXPECT_EQ(last(q.for_libpq(), "hostaddr"), "10.0.0.1,10.0.0.9");
    EXPECT_EQ(last(q.for_libpq(), "port"), "<unset>");
    // Nothing found for any name: the list as written (the session fails such an
    // attempt itself when names are the only way in).
    ConnectParams n("host=gone.test", {});
    n.use_addresses({{"gone.test", {}}});
    EXPECT_EQ(last(n.for_libpq(), "host"), "gone.test");
    EXPECT_EQ(last(n.for_libpq(), "hostaddr"), "<unset>");
    n.use_addresses({});
    EXPECT_EQ(last(n.for_libpq(), "host"), "<unset>");  // no lookup: the DSN as written
}

// libpq names a host given by hostaddr by its address alone; errors name it as
// libpq does for a name it looked up itself, where that is unambiguous.
TEST_F(ConnectParamsTest, ErrorsNameTheAddressesALookupFound) {
    ConnectParams p("host=db.test,alias.test,other.test,10.0.0.9", {});
    p.use_addresses({{"db.test", {"10.0.0.1", "10.0.0.2"}},
                     {"alias.test", {"10.0.0.2"}},
                     {"other.test", {"10.0.0.9"}}});
    EXPECT_EQ(p.naming_addresses("connection to server at \"10.0.0.1\", port 5432 failed: x"),
              "connection to server at \"db.test\" (10.0.0.1), port 5432 failed: x");
    // (two names for one address, or an address the DSN itself gives: left as libpq says)
    EXPECT_EQ(p.naming_addresses("at \"10.0.0.2\", port 1"), "at \"10.0.0.2\", port 1");
    EXPECT_EQ(p.naming_addresses("at \"10.0.0.9\", port 1"), "at \"10.0.0.9\", port 1");
}

// An entry that never answered goes last, for later attempts too; entries set
// aside come back in the order they were set aside (the longest ago first).
TEST_F(ConnectParamsTest, SetsSilentEntriesAsideInTurn) {
    ConnectParams p("host=h,h,k port=1,2,1", {});
    p.set_aside("h", "10.0.0.5", "2");
    EXPECT_EQ(last(p.for_libpq(), "port"), "1,1,2");  // h:1, k:1, h:2
    p.set_aside("h", "10.0.0.5", "1");
    EXPECT_EQ(last(p.for_libpq(), "port"), "1,2,1");  // k:1, h:2, h:1
    p.set_aside("x", "", "9");  // (reported as no entry says: the first one goes last)
    EXPECT_EQ(last(p.for_libpq(), "host"), "h,h,k");
    EXPECT_EQ(last(p.for_libpq(), "port"), "2,1,1");
}

// A name with several addresses: one that never answers is set aside alone,
// so the next try is the name's next address. (Before, the whole name was set
// aside: with one host in the DSN, every attempt began again at the silent
// address and never reached the other.)
TEST_F(ConnectParamsTest, SetsASilentAddressOfANameAside) {
    ConnectParams p("host=db.test", {});
    p.use_addresses({{"db.test", {"10.0.0.1", "10.0.0.2"}}});
    ASSERT_EQ(p.entry_count(), 2u);
    p.set_aside("db.test", "10.0.0.1", "5432");
    EXPECT_EQ(last(p.for_libpq(), "hostaddr"), "10.0.0.2,10.0.0.1");
    EXPECT_EQ(last(p.for_libpq(), "host"), "db.test,db.test");
    p.use_addresses({{"db.test", {"10.0.0.1", "10.0.0.2"}}});  // (the next attempt's lookup)
    EXPECT_EQ(last(p.for_libpq(), "hostaddr"), "10.0.0.2,10.0.0.1");
}

// With a service file (whose host and port lists it cannot see) the lists'
// lengths are left to libpq, and nothing is set aside.
TEST_F(ConnectParamsTest, ListsThatDoNotLineUpUnderAServiceAreLeftToLibpq) {
    ConnectParams p("service=prod host=a,b port=1,2,3", {});
    EXPECT_EQ(p.entry_count(), 0u);
    p.set_aside("a", "", "1");
    EXPECT_EQ(last(p.for_libpq(), "host"), "<unset>");
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

std::string usage_error_of(const char* dsn) {
    try {
        ConnectParams p(dsn, {});
    } catch (const UsageError& e) {
        return e.what();
    }
    return "<accepted>";
}

// Values libpq parses but refuses at every connect, in libpq's words (before:
// "database unavailable (invalid port number: ...)", retried for ever).
TEST_F(ConnectParamsTest, ValuesLibpqRefusesAtConnectAreUsageErrors) {
    const std::pair<const char*, const char*> cases[] = {
        {"port=abc", "invalid integer value \"abc\" for connection option \"port\""},
        {"port=5432x", "invalid integer value \"5432x\""},
        {"port=99999", "invalid port number: \"99999\""},
        {"port=0", "invalid port number: \"0\""},
        {"port=-1", "invalid port number: \"-1\""},
        {"host=a,b port=5432,abc", "invalid integer value \"abc\""},
        {"host=a,b port=1,2,3", "could not match 3 port numbers to 2 hosts"},
        {"host=a,b hostaddr=10.0.0.1,10.0.0.2,10.0.0.3",
         "could not match 2 host names to 3 hostaddr"},
        {"hostaddr=10.0.0.1 port=1,2", "could not match 2 port numbers to 1 hosts"},
        {"postgresql://a:1,b:2,c:x/db", "invalid integer value \"x\""},
        {"host=a sslmode=requre", "invalid sslmode value: \"requre\""},
        {"host=a sslmode=REQUIRE", "invalid sslmode value: \"REQUIRE\""},  // (libpq: strcmp)
        {"host=a gssencmode=on", "invalid gssencmode value: \"on\""},
        {"host=a channel_binding=yes", "invalid channel_binding value: \"yes\""},
        {"host=a target_session_attrs=master", "invalid target_session_attrs value: \"master\""},
    };
    for (const auto& [dsn, reason] : cases) {
        const std::string message = usage_error_of(dsn);
        EXPECT_EQ(message.rfind("invalid connection string: ", 0), 0u) << dsn << ": " << message;
        EXPECT_NE(message.find(reason), std::string::npos) << dsn << ": " << message;
    }
}

// What libpq accepts passes: its integer syntax, empty list elements (the
// default port), every documented value; and what a service file may decide.
// (Each was tried with psql and libpq 15 against a server; so were the
// refused ones above, which libpq refuses in the same words.)
TEST_F(ConnectParamsTest, ValuesLibpqAcceptsPass) {
    for (const char* dsn :
         {"port=5432", "port= 5432 ", "port=+5432", "host=a,b port=1,", "host=a,b,c port=7",
          "host=a,b hostaddr=10.0.0.1,10.0.0.2 port=1,2", "hostaddr=10.0.0.1 port=1",
          "host=a sslmode=verify-full", "host=a gssencmode=prefer",
          "host=a channel_binding=require", "host=a target_session_attrs=prefer-standby",
          "postgresql://a:1,b/db?sslmode=allow", "service=prod port=5432 host=a,b,c"})
        EXPECT_EQ(usage_error_of(dsn), "<accepted>") << dsn;
}

// The PG* variables count where the DSN is silent, as in libpq, but not over a
// service file (libpq ranks it above them) nor over the DSN's own value.
TEST_F(ConnectParamsTest, EnvironmentValuesAreCheckedWhereTheyApply) {
    setenv("PGSSLMODE", "on", 1);
    EXPECT_NE(usage_error_of("host=a").find("invalid sslmode value: \"on\""), std::string::npos);
    EXPECT_EQ(usage_error_of("host=a sslmode=require"), "<accepted>");
    EXPECT_EQ(usage_error_of("service=prod"), "<accepted>");
    setenv("PGSERVICE", "prod", 1);
    EXPECT_EQ(usage_error_of("host=a"), "<accepted>");
    unsetenv("PGSERVICE");
    unsetenv("PGSSLMODE");
    setenv("PGPORT", "54x", 1);
    EXPECT_NE(usage_error_of("host=a").find("\"54x\""), std::string::npos);
    EXPECT_EQ(usage_error_of("host=a port=5432"), "<accepted>");
    unsetenv("PGPORT");
    setenv("PGHOST", "a,b", 1);
    EXPECT_NE(usage_error_of("port=1,2,3").find("3 port numbers to 2 hosts"), std::string::npos);
    unsetenv("PGHOST");
}

}  // namespace
}  // namespace singleton_lock::pq
