// Looks host names up on a thread of its own before a session connects.
// libpq's non-blocking connect still calls getaddrinfo synchronously, so a DNS
// server that never answers held the caller's loop for the resolver's whole
// timeout (a standby exited 8.0 s after SIGTERM). The session now waits for
// this lookup's fd among its other events, then connects; by then the
// resolver has answered once, so libpq's own lookup of the same names is
// normally quick. When every host of the DSN is a name and none could be
// looked up, the session fails the attempt itself, in libpq's words, instead
// of letting libpq ask the silent resolver again. (A resolver that answers
// slowly each time still stalls libpq's lookup; a service file's hosts are not
// seen here.)
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

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
    // Once done: when no name could be looked up, libpq's words for the first
    // failure ("could not translate host name ...").
    std::optional<std::string> all_failed() const;

  private:
    struct Shared;
    std::shared_ptr<Shared> shared_;
};

}  // namespace singleton_lock
