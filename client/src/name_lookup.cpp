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
#include <new>
#include <system_error>
#include <thread>

namespace singleton_lock {

// Owned by the lookup and by its thread, whichever ends last.
struct NameLookup::Shared {
    int fd = -1;
    std::vector<std::string> names;
    std::vector<int> results;  // getaddrinfo's, per name (written before done)
    std::vector<std::vector<std::string>> addresses;  // numeric, per name (likewise)
    std::atomic<bool> done{false};
    ~Shared() {
        if (fd >= 0) ::close(fd);
    }
};

namespace {

// getaddrinfo's result for the name, and its addresses in the resolver's order
// (the order libpq would try them in), numeric.
int look_up(const std::string& name, std::vector<std::string>& addresses) {
    addrinfo hints{};  // as libpq asks
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &found);
    if (rc != 0) return rc;
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
        char text[NI_MAXHOST];
        if (::getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0,
                          NI_NUMERICHOST) == 0)
            addresses.emplace_back(text);
    }
    ::freeaddrinfo(found);
    return addresses.empty() ? EAI_NONAME : 0;
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
    shared_->results.reserve(shared_->names.size());
    shared_->addresses.resize(shared_->names.size());
    SignalsBlocked quiet;
    std::thread([shared = shared_] {
        for (std::size_t i = 0; i < shared->names.size(); ++i) {
            int rc = EAI_MEMORY;  // (should an address not fit in memory: as getaddrinfo says)
            try {
                rc = look_up(shared->names[i], shared->addresses[i]);
            } catch (const std::bad_alloc&) {
                shared->addresses[i].clear();
            }
            shared->results.push_back(rc);
        }
        shared->done.store(true);
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(shared->fd, &one, sizeof one);
    }).detach();
}

NameLookup::~NameLookup() = default;

int NameLookup::fd() const { return shared_->fd; }

bool NameLookup::done() const { return shared_->done.load(); }

pq::ConnectParams::Addresses NameLookup::found() const {
    pq::ConnectParams::Addresses out;
    if (!done()) return out;
    for (std::size_t i = 0; i < shared_->names.size(); ++i)
        out.emplace_back(shared_->names[i], shared_->results[i] == 0
                                                ? shared_->addresses[i]
                                                : std::vector<std::string>{});
    return out;
}

std::optional<std::string> NameLookup::all_failed() const {
    if (!done()) return std::nullopt;
    const auto& results = shared_->results;
    if (results.empty() || std::find(results.begin(), results.end(), 0) != results.end())
        return std::nullopt;
    return failure(0);
}

std::string NameLookup::failures() const {
    std::string out;
    if (!done()) return out;
    for (std::size_t i = 0; i < shared_->names.size(); ++i)
        if (shared_->results[i] != 0) out += (out.empty() ? "" : "\n") + failure(i);
    return out;
}

std::string NameLookup::failure(std::size_t i) const {
    return "could not translate host name \"" + shared_->names[i] + "\" to address: " +
           ::gai_strerror(shared_->results[i]);
}

}  // namespace singleton_lock
