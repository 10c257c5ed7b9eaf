// Looks host names up on a thread of its own before a session connects.
// libpq's non-blocking connect still calls getaddrinfo synchronously, so a DNS
// server that never answers held the caller's loop for the resolver's whole
// timeout (a standby exited 8.0 s after SIGTERM). The session now waits for
// this lookup's fd among its other events, then connects to the addresses it
// found (ConnectParams::use_addresses), so that libpq does not ask the
// resolver again (a resolver slow to answer stalled libpq's lookup as long
// again, in the caller's loop). When every host of the DSN is a name and none
// could be looked up, the session fails the attempt itself, in libpq's words.
// (A service file's hosts are not seen here: libpq looks those up.)
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connect_params.hpp"

namespace singleton_lock {

class NameLookup {
  public:
    // Starts looking the names up; throws std::system_error when no thread can
    // be started (the caller then connects at once, as before).
    explicit NameLookup(std::vector<std::string> names);
    // Abandons a lookup still running: its thread ends on its own.
    ~NameLookup();
    NameLookup(const NameLookup&) = delete;
    NameLookup& operator=(const NameLookup&) = delete;

    int fd() const;     // readable once every name has been looked up
    bool done() const;
    // Once done: each name with its numeric addresses (none when it failed).
    pq::ConnectParams::Addresses found() const;
    // Once done: when no name could be looked up, libpq's words for the first
    // failure ("could not translate host name ...").
    std::optional<std::string> all_failed() const;
    // Once done: libpq's words for each name that could not be looked up, one
    // per line ("" when none failed).
    std::string failures() const;

  private:
    std::string failure(std::size_t i) const;
    struct Shared;
    std::shared_ptr<Shared> shared_;
};

}  // namespace singleton_lock
