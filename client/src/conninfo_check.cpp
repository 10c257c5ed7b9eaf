#include "conninfo_check.hpp"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "singleton_lock/errors.hpp"

namespace singleton_lock::pq {

namespace {

// conninfo_setting, but where a service file is in use only the DSN's value:
// libpq ranks the service file (which we cannot see) above the environment.
struct Settings {
    const PQconninfoOption* parsed;
    bool service;

    std::string operator()(const char* keyword, const char* env) const {
        return conninfo_setting(parsed, keyword, service ? nullptr : env);
    }
};

[[noreturn]] void refuse(const std::string& reason) {
    throw UsageError("invalid connection string: " + reason);
}

// libpq's parse_int_param: strtol's leading white space, trailing white space.
bool libpq_integer(const std::string& text, long* out) {
    const char* begin = text.c_str();
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(begin, &end, 10);
    if (end == begin || errno != 0 || value < INT_MIN || value > INT_MAX) return false;
    while (*end != '\0' && std::isspace(static_cast<unsigned char>(*end))) ++end;
    *out = value;
    return *end == '\0';
}

void check_ports(const std::string& ports) {
    if (ports.empty()) return;
    for (const std::string& port : split_conninfo_list(ports)) {
        if (port.empty()) continue;  // this host's default port
        long number = 0;
        if (!libpq_integer(port, &number))
            refuse("invalid integer value \"" + port + "\" for connection option \"port\"");
        if (number < 1 || number > 65535) refuse("invalid port number: \"" + port + "\"");
    }
}

// libpq's count: hostaddr's list, else host's, else one default host.
void check_list_lengths(const Settings& setting) {
    const std::string host = setting("host", "PGHOST"), addr = setting("hostaddr", "PGHOSTADDR");
    const std::string port = setting("port", "PGPORT");
    const std::size_t hosts = host.empty() ? 0 : split_conninfo_list(host).size();
    const std::size_t addrs = addr.empty() ? 0 : split_conninfo_list(addr).size();
    if (hosts != 0 && addrs != 0 && hosts != addrs)
        refuse("could not match " + std::to_string(hosts) + " host names to " +
               std::to_string(addrs) + " hostaddr values");
    const std::size_t n = addrs != 0 ? addrs : (hosts != 0 ? hosts : 1);
    const std::size_t ports = port.empty() ? 0 : split_conninfo_list(port).size();
    if (ports > 1 && ports != n)
        refuse("could not match " + std::to_string(ports) + " port numbers to " +
               std::to_string(n) + " hosts");
}

void check_one_of(const Settings& setting, const char* keyword, const char* env,
                  std::initializer_list<const char*> allowed) {
    const std::string value = setting(keyword, env);
    if (value.empty()) return;
    for (const char* a : allowed)
        if (value == a) return;
    refuse(std::string("invalid ") + keyword + " value: \"" + value + "\"");
}

}  // namespace

std::string conninfo_setting(const PQconninfoOption* parsed, const char* keyword,
                             const char* env) {
    for (const PQconninfoOption* o = parsed; o && o->keyword; ++o)
        if (std::strcmp(o->keyword, keyword) == 0 && o->val && *o->val) return o->val;
    const char* value = env ? std::getenv(env) : nullptr;
    return value ? value : "";
}

std::vector<std::string> split_conninfo_list(const std::string& list) {
    std::vector<std::string> out;
    std::string::size_type start = 0;
    for (;;) {
        const auto comma = list.find(',', start);
        out.push_back(list.substr(start, comma - start));
        if (comma == std::string::npos) return out;
        start = comma + 1;
    }
}

void check_fixed_values(const PQconninfoOption* parsed) {
    const int version = PQlibVersion();
    if (version < 140000 || version >= 190000) return;
    const bool service = !conninfo_setting(parsed, "service", "PGSERVICE").empty();
    const Settings setting{parsed, service};
    check_ports(setting("port", "PGPORT"));
    if (!service) check_list_lengths(setting);
    check_one_of(setting, "sslmode", "PGSSLMODE",
                 {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"});
    check_one_of(setting, "gssencmode", "PGGSSENCMODE", {"disable", "prefer", "require"});
    check_one_of(setting, "channel_binding", "PGCHANNELBINDING", {"disable", "prefer", "require"});
    check_one_of(setting, "target_session_attrs", "PGTARGETSESSIONATTRS",
                 {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"});
}

}  // namespace singleton_lock::pq
