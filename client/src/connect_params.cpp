#include "connect_params.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "conninfo_check.hpp"
#include "singleton_lock/errors.hpp"

namespace singleton_lock::pq {

namespace {

bool is_numeric(const std::string& host) {
    unsigned char address[sizeof(in6_addr)];
    return ::inet_pton(AF_INET, host.c_str(), address) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), address) == 1;
}

// The environment variable that, when set, overrides one of our defaults.
const char* env_for(const std::string& keyword) {
    if (keyword == "connect_timeout") return "PGCONNECT_TIMEOUT";
    if (keyword == "client_encoding") return "PGCLIENTENCODING";
    if (keyword == "gssencmode") return "PGGSSENCMODE";
    return nullptr;
}

using ParsedDsn = std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)>;

// A DSN libpq cannot parse (bad syntax, an unknown keyword, a malformed URI)
// will never connect: a usage error, not an outage to retry through.
ParsedDsn parse_dsn(const std::string& dsn) {
    char* error = nullptr;
    ParsedDsn parsed(PQconninfoParse(dsn.c_str(), &error), PQconninfoFree);
    if (parsed) return parsed;
    if (error == nullptr) throw std::bad_alloc();  // libpq's only other failure
    std::string message(error);
    PQfreemem(error);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
        message.pop_back();
    throw UsageError("invalid connection string: " + message);
}

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
    return out;
}

}  // namespace

ConnectParams::ConnectParams(const std::string& dsn,
                             const std::vector<std::pair<std::string, std::string>>& defaults) {
    const ParsedDsn parsed(parse_dsn(dsn));
    check_fixed_values(parsed.get());
    // A service file's settings apply only where nothing else is set, and a
    // Kerberos service name is the DSN's choice of GSSAPI: both outrank our
    // skipping of libpq's GSSAPI probe (kerberos_signs.hpp).
    const bool gss_chosen = !conninfo_setting(parsed.get(), "service", "PGSERVICE").empty() ||
                            !conninfo_setting(parsed.get(), "krbsrvname", nullptr).empty();
    for (const auto& [key, value] : defaults) {
        const char* env = env_for(key);
        if (env && std::getenv(env) && *std::getenv(env)) continue;
        if (key == "gssencmode" && gss_chosen) continue;
        kw_.push_back(key);
        val_.push_back(value);
    }
    kw_.emplace_back("fallback_application_name");
    val_.emplace_back("singleton-lock");
    kw_.emplace_back("dbname");  // expanded: the DSN's own settings override the defaults above
    val_.push_back(dsn);
    parse_hosts(parsed.get());
    build_pointers();
}

void ConnectParams::build_pointers() {
    kw_ptrs_.clear();
    val_ptrs_.clear();
    for (std::size_t i = 0; i < kw_.size(); ++i) {
        kw_ptrs_.push_back(kw_[i].c_str());
        val_ptrs_.push_back(val_[i].c_str());
    }
    kw_ptrs_.push_back(nullptr);
    val_ptrs_.push_back(nullptr);
}

std::optional<std::chrono::milliseconds> ConnectParams::connect_timeout() const {
    // The last value wins, as in libpq: our default, then the DSN's, then (for
    // the default only) PGCONNECT_TIMEOUT, which made us leave ours out.
    std::string value;
    if (const char* env = std::getenv("PGCONNECT_TIMEOUT")) value = env;
    for (std::size_t i = 0; i < kw_.size(); ++i)
        if (kw_[i] == "connect_timeout") value = val_[i];
    if (!dsn_connect_timeout_.empty()) value = dsn_connect_timeout_;
    const long seconds = std::atol(value.c_str());
    if (seconds <= 0) return std::nullopt;
    return std::chrono::seconds(std::max(seconds, 2L));  // libpq's floor
}

// Only what is needed to reorder the host list; lists that do not line up are
// refused by check_fixed_values, or left to libpq where it cannot tell (a
// service file).
void ConnectParams::parse_hosts(PQconninfoOption* parsed) {
    const auto hosts = split_conninfo_list(conninfo_setting(parsed, "host", "PGHOST"));
    const auto addrs = split_conninfo_list(conninfo_setting(parsed, "hostaddr", "PGHOSTADDR"));
    const auto ports = split_conninfo_list(conninfo_setting(parsed, "port", "PGPORT"));
    for (PQconninfoOption* o = parsed; o->keyword; ++o)
        if (std::strcmp(o->keyword, "connect_timeout") == 0 && o->val)
            dsn_connect_timeout_ = o->val;
    const std::size_t n = std::max(hosts.size(), addrs.size());
    if ((hosts.size() != n && hosts.size() != 1) || (addrs.size() != n && addrs.size() != 1) ||
        (ports.size() != n && ports.size() != 1))
        return;
    per_host_ports_ = ports.size() == n && n > 1;
    for (std::size_t i = 0; i < n; ++i)
        hosts_.push_back({hosts.size() == n ? hosts[i] : hosts[0],
                          addrs.size() == n ? addrs[i] : addrs[0],
                          ports.size() == n ? ports[i] : ports[0]});
}

ConnectParams::HostNames ConnectParams::names_to_look_up() const {
    HostNames out;
    out.only_names = !hosts_.empty();
    for (const Host& h : hosts_) {
        if (h.host.empty() || h.host[0] == '/' || h.host[0] == '@' || !h.hostaddr.empty() ||
            is_numeric(h.host)) {
            out.only_names = false;
            continue;
        }
        if (std::find(out.names.begin(), out.names.end(), h.host) == out.names.end())
            out.names.push_back(h.host);
    }
    return out;
}

// Whether libpq, reporting host, hostaddr and port (PQhost, PQhostaddr,
// PQport), was trying this entry.
bool ConnectParams::Host::tried_as(const std::string& h, const std::string& a,
                                   const std::string& p) const {
    const bool same_host = host.empty() ? hostaddr == h : host == h;
    return same_host && (hostaddr.empty() || host.empty() || hostaddr == a) &&
           (port.empty() || port == p);
}

// The DSN's hosts, each name a lookup found given as one entry per address (a
// name it found nothing for is left out while others remain: libpq would only
// ask the resolver again, and wait as long again); entries set aside go last,
// the one set aside longest ago first.
std::vector<ConnectParams::Host> ConnectParams::hosts_to_try() const {
    std::vector<Host> out;
    for (const Host& h : hosts_) {
        const auto found = std::find_if(addresses_.begin(), addresses_.end(),
                                        [&](const auto& a) { return a.first == h.host; });
        if (!h.hostaddr.empty() || found == addresses_.end()) {
            out.push_back(h);
            continue;
        }
        for (const std::string& address : found->second) out.push_back({h.host, address, h.port});
    }
    if (out.empty()) out = hosts_;
    std::vector<Host> ready, later;
    for (const Host& h : out)
        (std::find(set_aside_.begin(), set_aside_.end(), h) == set_aside_.end() ? ready : later)
            .push_back(h);
    for (const Host& h : set_aside_)
        if (std::find(later.begin(), later.end(), h) != later.end()) ready.push_back(h);
    return ready;
}

std::size_t ConnectParams::entry_count() const { return hosts_to_try().size(); }

void ConnectParams::set_aside(const std::string& host, const std::string& hostaddr,
                              const std::string& port) {
    const std::vector<Host> entries = hosts_to_try();
    if (entries.empty()) return;
    const auto tried = std::find_if(entries.begin(), entries.end(), [&](const Host& e) {
        return e.tried_as(host, hostaddr, port);
    });
    // (not found, should libpq report what no entry says: the first one, which
    // it began with, so that the next attempt begins elsewhere)
    const Host silent = tried != entries.end() ? *tried : entries.front();
    set_aside_.erase(std::remove(set_aside_.begin(), set_aside_.end(), silent), set_aside_.end());
    set_aside_.push_back(silent);
    if (set_aside_.size() > kMostSetAside) set_aside_.erase(set_aside_.begin());
}

// libpq names a host given by hostaddr by its address alone: where the address
// is one a lookup found for exactly one name (and not written in the DSN), its
// message names the host as it does for a name it looked up itself.
std::string ConnectParams::naming_addresses(std::string message) const {
    const auto written = [&](const std::string& a) {
        return std::any_of(hosts_.begin(), hosts_.end(),
                           [&](const Host& h) { return h.host == a || h.hostaddr == a; });
    };
    for (const auto& [name, addresses] : addresses_)
        for (const std::string& a : addresses) {
            const auto owners = std::count_if(addresses_.begin(), addresses_.end(), [&](const auto& o) {
                return std::find(o.second.begin(), o.second.end(), a) != o.second.end();
            });
            if (owners != 1 || written(a)) continue;
            const std::string bare = "at \"" + a + "\", port ";
            const std::string named = "at \"" + name + "\" (" + a + "), port ";
            for (auto at = message.find(bare); at != std::string::npos;
                 at = message.find(bare, at + named.size()))
                message.replace(at, bare.size(), named);
        }
    return message;
}

ConnectParams ConnectParams::for_libpq() const {
    ConnectParams out;
    out.kw_ = kw_;
    out.val_ = val_;
    if (!set_aside_.empty() || !addresses_.empty()) {
        // After the dbname entry: later keywords override the expanded DSN.
        std::vector<std::string> hosts, addrs, ports;
        for (const Host& h : hosts_to_try()) {
            hosts.push_back(h.host);
            addrs.push_back(h.hostaddr);
            ports.push_back(h.port);
        }
        const auto any = [](const std::vector<std::string>& v) {
            return std::any_of(v.begin(), v.end(), [](const std::string& x) { return !x.empty(); });
        };
        if (any(hosts)) {
            out.kw_.emplace_back("host");
            out.val_.push_back(joined(hosts));
        }
        if (any(addrs)) {
            out.kw_.emplace_back("hostaddr");
            out.val_.push_back(joined(addrs));
        }
        if (per_host_ports_) {  // (else one port, or none, applies to every entry)
            out.kw_.emplace_back("port");
            out.val_.push_back(joined(ports));
        }
    }
    out.build_pointers();
    return out;
}

}  // namespace singleton_lock::pq
