#include "health.hpp"

#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace singleton_lock::cli {

namespace {

// Per connection; what a prober needs, and what bounds a hostile client: a
// request that does not fit the memory (headers included) is refused, an idle
// connection closed, and one address cannot take every slot. (Before, with
// cpp-httplib 0.11: one connection at a time, no limit on the number of
// headers or on a chunked body; 400 MiB of either grew the wrapper by as much.)
constexpr unsigned kConnections = 32;
constexpr unsigned kConnectionsPerAddress = 8;
constexpr unsigned kIdleSeconds = 2;
constexpr std::size_t kConnectionMemory = 32 * 1024;
constexpr std::size_t kThreadStack = 256 * 1024;
constexpr const char* kAllowed = "GET, HEAD, OPTIONS";

struct Reply {
    unsigned status = MHD_HTTP_NOT_FOUND;
    std::string body;
    const char* content_type = "text/plain";
    bool allow = false;  // with the Allow header
};

Reply status_reply(bool ok, const char* body) {
    return {ok ? unsigned{MHD_HTTP_OK} : unsigned{MHD_HTTP_SERVICE_UNAVAILABLE}, std::string(body) + "\n"};
}

const char* health_body(HealthSource::Health h) {
    switch (h) {
        case HealthSource::Health::leader: return "leader";
        case HealthSource::Health::standby: return "standby";
        case HealthSource::Health::unreachable: break;
    }
    return "unreachable";
}

// GET (and HEAD: the library sends the head alone) of path; 404 off our paths.
Reply get(const HealthSource& source, const std::string& path) {
    if (path == "/livez") {
        const bool alive = source.alive();
        return status_reply(alive, alive ? "alive" : "stuck");
    }
    if (path == "/readyz" || path == "/leader") {
        const bool leader = source.leader();
        return status_reply(leader, leader ? "leader" : "standby");
    }
    if (path == "/healthz") {
        const auto h = source.health();
        return status_reply(h != HealthSource::Health::unreachable, health_body(h));
    }
    if (path == "/metrics")
        return {MHD_HTTP_OK, source.metrics(), "text/plain; version=0.0.4; charset=utf-8"};
    return {};
}

bool is_endpoint(const std::string& path) {
    for (const char* ours : {"/livez", "/readyz", "/leader", "/healthz", "/metrics"})
        if (path == ours) return true;
    return false;
}

// The endpoints only read: other methods on them get 405 with Allow, as HTTP
// says; OPTIONS says what is allowed.
Reply answer(const HealthSource& source, const std::string& method, const std::string& path) {
    if (method == "GET" || method == "HEAD") return get(source, path);
    if (!is_endpoint(path)) return {};
    if (method == "OPTIONS") return {MHD_HTTP_NO_CONTENT, "", "text/plain", true};
    return {MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n", "text/plain", true};
}

MHD_Result queue(MHD_Connection* connection, const Reply& reply) {
    MHD_Response* response = MHD_create_response_from_buffer(
        reply.body.size(), const_cast<char*>(reply.body.data()), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type);
    if (reply.allow) MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, kAllowed);
    const MHD_Result queued = MHD_queue_response(connection, reply.status, response);
    MHD_destroy_response(response);
    return queued;
}

// The library's request callback. It answers on the first call, when the
// head has arrived: a body, if any, is never read (the connection is closed
// after the answer). No exception leaves it (it is called from C).
MHD_Result on_request(void* cls, MHD_Connection* connection, const char* url, const char* method,
                      const char*, const char*, size_t*, void**) {
    try {
        return queue(connection, answer(*static_cast<const HealthSource*>(cls), method, url));
    } catch (...) {
        return MHD_NO;  // (closes the connection)
    }
}

[[noreturn]] void cannot_listen(const std::string& host, int port, const std::string& why) {
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " + why);
}

// A listening socket on host:port (the first address that binds). SO_REUSEADDR
// (a restart binds again at once) but never SO_REUSEPORT: with it a second
// instance given the same port bound it too, and the kernel spread probes
// between them (a standby's 503 and a leader's 200 at random for /readyz).
int listen_on(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* found = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
    if (rc != 0) cannot_listen(host, port, "cannot resolve " + host + ": " + ::gai_strerror(rc));
    int error = 0, fd = -1;
    for (const addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) { error = errno; continue; }
        const int yes = 1, no = 0;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        if (a->ai_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 16) == 0) break;
        error = errno;
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(found);
    if (fd < 0) cannot_listen(host, port, std::strerror(error));
    return fd;
}

int bound_port(int fd) {
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) return 0;
    if (local.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in&>(local).sin_port);
    if (local.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6&>(local).sin6_port);
    return 0;
}

}  // namespace

HealthServer::HealthServer(const std::string& host, int port, const HealthSource& source) {
    const int fd = listen_on(host, port);
    port_ = bound_port(fd);
    // (MHD_start_daemon's options are variadic: each value of its exact type.)
    daemon_ = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC, 0, nullptr, nullptr,
        &on_request, const_cast<HealthSource*>(&source),
        MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd),
        MHD_OPTION_CONNECTION_LIMIT, kConnections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, kConnectionsPerAddress,
        MHD_OPTION_CONNECTION_TIMEOUT, kIdleSeconds,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,
        MHD_OPTION_THREAD_STACK_SIZE, kThreadStack,
        MHD_OPTION_END);
    if (daemon_ == nullptr) {
        ::close(fd);
        cannot_listen(host, port, "cannot start the HTTP server (libmicrohttpd)");
    }
}

HealthServer::~HealthServer() { MHD_stop_daemon(daemon_); }

}  // namespace singleton_lock::cli

extern "C" singleton_lock::cli::HealthEndpoint* singleton_lock_health_open_v1(
    const char* build_version, const char* host, int port,
    const singleton_lock::cli::HealthSource* source, char* error, std::size_t error_size) {
    const auto fail = [&](const std::string& message) -> singleton_lock::cli::HealthEndpoint* {
        std::snprintf(error, error_size, "%s", message.c_str());
        return nullptr;
    };
    if (std::strcmp(build_version, SINGLETON_LOCK_VERSION) != 0)
        return fail(std::string("the module is of version ") + SINGLETON_LOCK_VERSION +
                    ", singleton-lock of version " + build_version);
    try {  // no exception leaves the module
        return new singleton_lock::cli::HealthServer(host, port, *source);
    } catch (const std::exception& e) {
        return fail(e.what());
    } catch (...) {
        return fail("unknown error");
    }
}
