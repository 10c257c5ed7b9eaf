// The parameters a connect hands to libpq: our defaults, the user's DSN, and
// the host list as the client tries it (names as the addresses a lookup
// found; entries that never answered set aside).
#pragma once

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace singleton_lock::pq {

// Connection parameters: defaults first, then the user's DSN (expand_dbname),
// so anything the DSN says wins. A default is also skipped when its PG*
// environment variable is set.
//
// Several hosts (host=a,b,c), or a name with several addresses: libpq tries
// them in turn and moves on by itself from one that refuses or is not what
// target_session_attrs asks for, but its non-blocking connect applies no
// connect_timeout, so one that never answers (a machine gone from the
// network) would stall every attempt. The caller gives each entry (a host, or
// one address of a name) its own time (Connection::next_host); an entry that
// timed out goes to the back of the list for later attempts too. (Before the
// names were given as addresses, a name whose first address never answered
// was set aside whole: no attempt reached its other addresses.)
class ConnectParams {
  public:
    ConnectParams(const std::string& dsn,
                  const std::vector<std::pair<std::string, std::string>>& defaults);
    const char* const* keywords() const { return kw_ptrs_.data(); }
    const char* const* values() const { return val_ptrs_.data(); }

    // The entries the next connect tries (hosts, names as their addresses).
    std::size_t entry_count() const;
    // The entry libpq reports trying (PQhost, PQhostaddr, PQport) never
    // answered: it goes behind the others, for this attempt and later ones.
    void set_aside(const std::string& host, const std::string& hostaddr, const std::string& port);
    // These parameters as the next connect gives them to libpq.
    ConnectParams for_libpq() const;
    // The connect_timeout libpq would use (at least 2 s); nullopt: none.
    std::optional<std::chrono::milliseconds> connect_timeout() const;
    // The host names a connect would look up (name_lookup.hpp): not a Unix
    // socket (a path, or @abstract), not a numeric address, and without a
    // hostaddr of their own; each once.
    struct HostNames {
        std::vector<std::string> names;
        bool only_names = false;  // every host is one of them (there is no other way in)
    };
    HostNames names_to_look_up() const;
    // What a lookup of those names found (name -> numeric addresses; none when
    // it failed). Connects then give libpq each address as an entry of its own
    // (host=NAME hostaddr=ADDRESS: TLS, Kerberos and the password file still
    // see the name), so that libpq, whose lookup blocks, does not ask the
    // resolver again. Empty (the default): libpq looks the names up itself.
    using Addresses = std::vector<std::pair<std::string, std::vector<std::string>>>;
    void use_addresses(Addresses found) { addresses_ = std::move(found); }
    // libpq's message with such addresses named as libpq names a host it
    // looked up itself ("db.test" (10.0.0.1)).
    std::string naming_addresses(std::string message) const;

  private:
    struct Host {
        std::string host, hostaddr, port;
        bool operator==(const Host& o) const {
            return host == o.host && hostaddr == o.hostaddr && port == o.port;
        }
        bool tried_as(const std::string& h, const std::string& a, const std::string& p) const;
    };
    static constexpr std::size_t kMostSetAside = 64;
    ConnectParams() = default;
    void parse_hosts(PQconninfoOption* parsed);  // the parsed DSN (never null: refused first)
    std::vector<Host> hosts_to_try() const;
    void build_pointers();
    std::vector<std::string> kw_, val_;
    std::vector<const char*> kw_ptrs_, val_ptrs_;
    std::vector<Host> hosts_;
    Addresses addresses_;
    std::vector<Host> set_aside_;  // entries that never answered, the latest last
    std::string dsn_connect_timeout_;
    bool per_host_ports_ = false;
};

}  // namespace singleton_lock::pq
