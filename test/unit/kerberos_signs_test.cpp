// When the elector skips libpq's GSSAPI probe (gssencmode=disable by default):
// only on a host without any sign of Kerberos. A fake host; no server needed.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "kerberos_signs.hpp"
#include "policy.hpp"

namespace singleton_lock {
namespace {

using namespace std::chrono_literals;

struct FakeHost {
    std::map<std::string, std::string> env;
    std::set<std::string> paths;
    std::set<std::string> dirs_with_files;
    kerberos::Host view() const {
        kerberos::Host h;
        h.env = [this](const char* name) -> const char* {
            const auto it = env.find(name);
            return it == env.end() ? nullptr : it->second.c_str();
        };
        h.exists = [this](const std::string& p) { return paths.count(p) > 0; };
        h.has_files = [this](const std::string& p) { return dirs_with_files.count(p) > 0; };
        h.uid = 1000;
        h.euid = 1001;
        return h;
    }
};

TEST(Kerberos, NoSignMeansNoProbe) {
    FakeHost host;
    EXPECT_FALSE(kerberos::possible(host.view()));
    host.env["KRB5CCNAME"] = "";  // set but empty: MIT ignores it too
    host.paths.insert("/tmp/krb5cc_1002");  // another user's cache
    host.paths.insert("/etc/gss/mech.d");    // the (empty) directory libgssapi-krb5-2 ships
    EXPECT_FALSE(kerberos::possible(host.view()));
}

TEST(Kerberos, AnySignKeepsLibpqsProbe) {
    for (const char* var :
         {"KRB5_CONFIG", "KRB5CCNAME", "KRB5_CLIENT_KTNAME", "GSS_USE_PROXY", "GSS_MECH_CONFIG"}) {
        FakeHost host;
        host.env[var] = "x";
        EXPECT_TRUE(kerberos::possible(host.view())) << var;
    }
    for (const char* path :
         {"/etc/krb5.conf", "/tmp/krb5cc_1000", "/tmp/krb5cc_1001",
          "/etc/krb5/user/1000/client.keytab", "/etc/krb5/user/1001/client.keytab", "/etc/gss/mech"}) {
        FakeHost host;
        host.paths.insert(path);
        EXPECT_TRUE(kerberos::possible(host.view())) << path;
    }
    FakeHost host;
    host.dirs_with_files.insert("/etc/gss/mech.d");  // e.g. GSS-Proxy's interposer
    EXPECT_TRUE(kerberos::possible(host.view()));
}

std::string value_of(const std::vector<std::pair<std::string, std::string>>& d, const char* key) {
    for (const auto& [k, v] : d)
        if (k == key) return v;
    return "<unset>";
}

TEST(Kerberos, TheDefaultFollowsTheSigns) {
    const Timing t = make_timing(10s, std::nullopt);
    EXPECT_EQ(value_of(policy::connection_defaults(t, false), "gssencmode"), "disable");
    EXPECT_EQ(value_of(policy::connection_defaults(t, true), "gssencmode"), "<unset>");
}

}  // namespace
}  // namespace singleton_lock
