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
class ConnectParams {
  public:
    ConnectParams(const std::string& dsn,
                  const std::vector<std::pair<std::string, std::string>>& defaults);
    const char* const* keywords() const { return kw_ptrs_.data(); }
    const char* const* values() const { return val_ptrs_.data(); }

  private:
    std::vector<std::string> kw_, val_;
    std::vector<const char*> kw_ptrs_, val_ptrs_;
};

class Connection {
  public:
    enum class Progress { want_read, want_write, ready };

    Connection() = default;

    // Blocking connect (admin commands). Throws ConnectionError.
    static Connection open(const ConnectParams& params);
    // Non-blocking connect: start, then call advance() when fd() is ready.
    static Connection start(const ConnectParams& params);
    Progress advance();  // throws ConnectionError

    int fd() const { return conn_ ? PQsocket(conn_.get()) : -1; }
    int backend_pid() const { return conn_ ? PQbackendPID(conn_.get()) : 0; }
    void close() {
        conn_.reset();
        in_flight_ = false;
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
    // Payloads of NOTIFY messages received so far, with the sender's backend pid.
    std::vector<std::pair<int, std::string>> take_notifications();

    // Cancels the in-flight request (PQcancel), waiting at most `limit` for the
    // cancel request itself: it runs on a short-lived helper thread.
    void cancel(std::chrono::milliseconds limit);

  private:
    explicit Connection(ConnPtr c) : conn_(std::move(c)) {}
    ConnPtr conn_;
    bool in_flight_ = false;
    bool writing_ = false;
    ResultPtr pending_;
    bool pending_error_ = false;
};

// Quotes an identifier ("my schema" -> "\"my schema\"").
std::string quote_ident(const std::string& ident);

}  // namespace singleton_lock::pq
