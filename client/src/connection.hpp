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

#include "connect_params.hpp"

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

class Connection {
  public:
    enum class Progress { want_read, want_write, ready };

    Connection() = default;

    // Blocking connect (admin commands). Throws ConnectionError.
    static Connection open(const ConnectParams& params);
    // Non-blocking connect: start, then call advance() when fd() is ready.
    // Entries set aside go last; params must outlive the connection attempt.
    static Connection start(ConnectParams& params);
    Progress advance();  // throws ConnectionError
    // The entry being tried (a host, or one address of a name) did not answer
    // in time: set it aside (ConnectParams::set_aside) and start over with the
    // others. False when every entry has had its turn in this attempt. Throws
    // ConnectionError.
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
