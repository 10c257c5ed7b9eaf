// One database session of the elector: a non-blocking libpq connection with at
// most one request in flight, every step bounded by a deadline on the local
// monotonic clock. Closing it cancels a request still in flight, so a query the
// client stopped waiting for never runs on (and acts late) in the server.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "connection.hpp"
#include "name_lookup.hpp"

namespace singleton_lock {

class Session {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;
    enum class Status { closed, connecting, idle, busy };
    enum class Event { none, connected, replied };

    // setup: the first statements of every connection of this session (the
    // session's own settings), one after the other; the connect completes with
    // the last one's reply.
    Session(std::string label, std::vector<std::string> setup)
        : label_(std::move(label)), setup_(std::move(setup)) {}
    ~Session() { close(); }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    Status status() const { return status_; }
    bool idle() const { return status_ == Status::idle; }

    // Starts a non-blocking connect (closing what was open); each host of the
    // DSN gets per_host to answer (libpq's non-blocking connect applies no
    // connect_timeout), and the setup statements as long again. Host names
    // are looked up first, on a thread (name_lookup.hpp), for as long as the
    // resolver takes. params must outlive the attempt. Throws ConnectionError.
    void connect(pq::ConnectParams& params, std::chrono::milliseconds per_host);
    // Sends a request on an idle session. Throws ConnectionError.
    void send(const std::string& sql, const pq::Params& params, TimePoint reply_by);
    TimePoint sent_at() const { return sent_at_; }
    // Sends a request the server ends early when the session's next request
    // arrives (singleton_watch): one more request can then be queued behind
    // it (send_behind) instead of cancelling it first. Throws ConnectionError.
    void send_yielding(const std::string& sql, const pq::Params& params, TimePoint reply_by);
    // The yielding request is in flight alone and the server has begun to
    // answer it (the extension sends the start of the reply as the watch
    // begins to wait): a request sent now cannot arrive in the server's read
    // of the first one, where it would go unnoticed.
    bool can_send_behind() const {
        return status_ == Status::busy && conn_.piped() == 1 && heard_;
    }
    // The yielding request is in flight alone, the server not yet answering.
    bool awaiting_first_answer() const {
        return status_ == Status::busy && conn_.piped() == 1 && !heard_;
    }
    // Queues a request behind the yielding one in flight; on_ready() reports
    // both replies (or errors) in order. Throws ConnectionError.
    void send_behind(const std::string& sql, const pq::Params& params, TimePoint reply_by);
    // A reply already read and not yet reported (two arrived at once): call
    // on_ready() again.
    bool reply_buffered() const { return status_ == Status::busy && conn_.result_buffered(); }

    int fd() const {
        if (lookup_) return lookup_->fd();
        return status_ == Status::closed ? -1 : conn_.fd();
    }
    short events() const;
    // The socket is ready (revents != 0): advances the connect or the request.
    // An idle session reads too, so a closed connection is noticed at once.
    // Throws ConnectionError when the session broke, the typed ServerError when
    // the request failed (the session is idle again then).
    Event on_ready(short revents);
    pq::Result take_result() { return std::move(result_); }
    // The last setup statement's reply, from Event::connected on.
    const pq::Result& setup_result() const { return setup_result_; }
    // When the connect or the reply is overdue (TimePoint::max() when none is due).
    TimePoint deadline() const { return deadline_; }
    // When deadline() has passed: a connect moves on to the DSN's next host,
    // else throws ConnectionError (every host tried, or no reply in time).
    void check_deadline(TimePoint now);

    int backend_pid() const { return status_ == Status::closed ? 0 : conn_.backend_pid(); }
    std::vector<std::pair<int, std::string>> notifications() { return conn_.take_notifications(); }

    // Asks the server to cancel the request in flight (waiting for the cancel
    // request itself at most ~200 ms); its reply or error arrives as usual.
    void cancel() noexcept;
    // Cancels a request in flight (waiting for the cancel at most ~200 ms), then
    // closes the connection. Never throws.
    void close() noexcept;
    // Closes the connection without cancelling: for a request that may run on
    // harmlessly (a watch: it writes nothing, and the server ends it as soon as
    // it sees the connection closed), saving the cancel's new connection.
    void abandon() noexcept;

  private:
    void begin_request(TimePoint reply_by);
    void start_connect();
    Event advance_connect();
    void send_setup(std::size_t step);
    Event setup_replied();
    Event advance_request(short revents);
    void request_done();

    std::string label_;
    std::vector<std::string> setup_;
    bool setting_up_ = false;  // a setup statement is in flight
    std::size_t setup_step_ = 0;  // which one
    pq::Connection conn_;
    pq::ConnectParams* params_ = nullptr;  // of the connect in progress
    std::unique_ptr<NameLookup> lookup_;  // while connecting: the names not yet looked up
    bool only_names_ = false;             // and no host of the DSN is reached without them
    std::string not_found_;  // names this attempt left out, in libpq's words (for its error)
    Status status_ = Status::closed;
    pq::Connection::Progress progress_ = pq::Connection::Progress::want_write;
    TimePoint deadline_ = TimePoint::max();
    std::chrono::milliseconds per_host_{0};
    TimePoint setup_deadline_{};  // for all the setup statements together
    TimePoint sent_at_{};
    bool heard_ = false;  // data came in since the yielding request went out
    TimePoint behind_sent_at_{};                    // the queued request's send time
    TimePoint behind_reply_by_ = TimePoint::max();  // and deadline
    pq::Result result_;
    pq::Result setup_result_;
};

}  // namespace singleton_lock
