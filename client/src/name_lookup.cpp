#include "name_lookup.hpp"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <system_error>
#include <thread>

namespace singleton_lock {

// Owned by the lookup and by its thread, whichever ends last.
struct NameLookup::Shared {
    int fd = -1;
    std::vector<std::string> names;
    std::vector<int> results;  // getaddrinfo's, per name (written before done)
    std::atomic<bool> done{false};
    ~Shared() {
        if (fd >= 0) ::close(fd);
    }
};

namespace {

int look_up(const std::string& name) {
    addrinfo hints{};  // as libpq asks
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &found);
    if (rc == 0) ::freeaddrinfo(found);
    return rc;
}

// While alive, the calling thread blocks every signal, so that a thread it
// starts takes none: they stay with the application's threads (a handler run
// on the lookup's thread would not interrupt the caller's wait).
class SignalsBlocked {
  public:
    SignalsBlocked() {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old_);
    }
    ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
    SignalsBlocked(const SignalsBlocked&) = delete;
    SignalsBlocked& operator=(const SignalsBlocked&) = delete;

  private:
    sigset_t old_;
};

}  // namespace

NameLookup::NameLookup(std::vector<std::string> names) : shared_(std::make_shared<Shared>()) {
    shared_->fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (shared_->fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    shared_->names = std::move(names);
    shared_->results.reserve(shared_->names.size());  // (no allocation on the thread)
    SignalsBlocked quiet;
    std::thread([shared = shared_] {
        for (const auto& name : shared->names) shared->results.push_back(look_up(name));
        shared->done.store(true);
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(shared->fd, &one, sizeof one);
    }).detach();
}

NameLookup::~NameLookup() = default;

int NameLookup::fd() const { return shared_->fd; }

bool NameLookup::done() const { return shared_->done.load(); }

std::optional<std::string> NameLookup::all_failed() const {
    if (!done()) return std::nullopt;
    const auto& results = shared_->results;
    if (results.empty() || std::find(results.begin(), results.end(), 0) != results.end())
        return std::nullopt;
    return "could not translate host name \"" + shared_->names.front() + "\" to address: " +
           ::gai_strerror(results.front());
}

}  // namespace singleton_lock
