// RAII over libpq (PGconn, PGresult) for the client. The one place that turns
// libpq results into values or typed errors (PQresultStatus + PG_DIAG_SQLSTATE).
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace singleton_lock::pq {

struct ConnDeleter {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct ResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// A successful result (errors are thrown, never returned).
class Result {
  public:
    Result() = default;
    explicit Result(ResultPtr r) : r_(std::move(r)) {}
    int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
    int columns() const { return r_ ? PQnfields(r_.get()) : 0; }
    bool is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
    std::string text(int row, int col) const;  // "" for NULL

  private:
    ResultPtr r_;
};

using Params = std::vector<std::optional<std::string>>;  // text parameters, nullopt = NULL

// Throws the typed error for a failed result (ConnectionError when the
// connection is gone, else ServerError subclasses by SQLSTATE).
void check(PGconn* conn, const PGresult* result);

// Connection parameters: defaults first, then the user's DSN (expand_dbname),
// so anything the DSN says wins. A default is also skipped when its PG*
// environment variable is set.
//
// Several hosts (host=a,b,c): libpq tries them in turn and moves on by itself
// from a host that refuses or is not what target_session_attrs asks for, but
// its non-blocking connect applies no connect_timeout, so one host that never
// answers (a machine gone from the network) would stall every attempt. The
// caller gives each host its own time (Connection::next_host); a host that
// timed out goes to the back of the list for later attempts too.
class ConnectParams {
  public:
    ConnectParams(const std::string& dsn,
                  const std::vector<std::pair<std::string, std::string>>& defaults);
    const char* const* keywords() const { return kw_ptrs_.data(); }
    const char* const* values() const { return val_ptrs_.data(); }

    std::size_t host_count() const { return hosts_.size(); }
    // Where attempts start; rotate_after(i) makes it the host after host i.
    std::size_t first_host() const { return first_; }
    void rotate_after(std::size_t host) {
        first_ = (host + 1) % std::max<std::size_t>(1, hosts_.size());
    }
    // Index of the host libpq reports (PQhost, PQport) in the DSN's list.
    std::optional<std::size_t> find_host(const std::string& host, const std::string& port) const;
    // These parameters with the host list starting at host `first`.
    ConnectParams starting_at(std::size_t first) const;
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
    };
    ConnectParams() = default;
    void parse_hosts(PQconninfoOption* parsed);  // the parsed DSN (never null: refused first)
    std::vector<Host> hosts_to_try(std::size_t first) const;
    void build_pointers();
    std::vector<std::string> kw_, val_;
    std::vector<const char*> kw_ptrs_, val_ptrs_;
    std::vector<Host> hosts_;
    Addresses addresses_;
    std::string dsn_connect_timeout_;
    bool per_host_ports_ = false;
    std::size_t first_ = 0;
};

class Connection {
  public:
    enum class Progress { want_read, want_write, ready };

    Connection() = default;

    // Blocking connect (admin commands). Throws ConnectionError.
    static Connection open(const ConnectParams& params);
    // Non-blocking connect: start, then call advance() when fd() is ready.
    // Starts at params.first_host(); params must outlive the connection attempt.
    static Connection start(ConnectParams& params);
    Progress advance();  // throws ConnectionError
    // The host being tried did not answer in time: start over from the DSN's
    // next host (and remember to start there next time). False when every host
    // has had its turn in this attempt. Throws ConnectionError.
    bool next_host();

    int fd() const { return conn_ ? PQsocket(conn_.get()) : -1; }
    int backend_pid() const { return conn_ ? PQbackendPID(conn_.get()) : 0; }
    // A cancel handle for this connection's requests (PQfreeCancel it), or null.
    PGcancel* new_cancel() const { return conn_ ? PQgetCancel(conn_.get()) : nullptr; }
    void close() {
        conn_.reset();
        in_flight_ = false;
        piped_ = 0;
        pending_.reset();
    }

    // Blocking query (admin commands).
    Result exec(const std::string& sql, const Params& params);

    // Non-blocking request: send, then on socket readiness call read_input()
    // and poll_result() until it returns a result.
    void send(const std::string& sql, const Params& params);
    bool wants_write() const;  // unsent data left (PQflush pending)
    void flush();              // throws ConnectionError
    // Reads what the socket has; throws ConnectionError when the connection broke.
    void read_input();
    // The full result once the request completed (PQgetResult returned NULL),
    // std::nullopt while still busy. Throws the typed error of a failed request.
    std::optional<Result> poll_result();

    // Pipeline mode (libpq >= 14): a request sent with send_piped() may have
    // another one queued behind it (send_piped again) while it still runs, each
    // with a Sync of its own, so an error ends that request only. poll_result()
    // returns their results in order, one per call; the connection leaves
    // pipeline mode once every result is in.
    void send_piped(const std::string& sql, const Params& params);
    int piped() const { return piped_; }  // requests in flight in pipeline mode
    // A piped request's result is already read, so no socket readiness will
    // announce it: call poll_result() again.
    bool result_buffered() const { return piped_ > 0 && PQisBusy(conn_.get()) == 0; }
    // Payloads of NOTIFY messages received so far, with the sender's backend pid.
    std::vector<std::pair<int, std::string>> take_notifications();

    // Cancels the in-flight request (PQcancel), waiting at most `limit` for the
    // cancel request itself: it runs on a short-lived helper thread.
    void cancel(std::chrono::milliseconds limit);

  private:
    explicit Connection(ConnPtr c) : conn_(std::move(c)) {}
    static ConnPtr start_conn(const ConnectParams& params);
    std::optional<Result> poll_piped_result();
    void keep(PGresult* r);
    void leave_pipeline();
    ConnPtr conn_;
    ConnectParams* params_ = nullptr;  // for next_host()
    std::size_t hosts_skipped_ = 0;
    bool in_flight_ = false;
    int piped_ = 0;
    bool writing_ = false;
    ResultPtr pending_;
    bool pending_error_ = false;
};

// Quotes an identifier ("my schema" -> "\"my schema\"").
std::string quote_ident(const std::string& ident);

}  // namespace singleton_lock::pq
