#include "session.hpp"

#include <poll.h>

#include <algorithm>
#include <system_error>

#include "singleton_lock/duration.hpp"
#include "singleton_lock/errors.hpp"

namespace singleton_lock {

namespace {
constexpr std::chrono::milliseconds kCancelWait{200};
}

void Session::connect(pq::ConnectParams& params, std::chrono::milliseconds per_host) {
    close();
    setting_up_ = false;
    params_ = &params;
    per_host_ = per_host;
    status_ = Status::connecting;
    if (auto hosts = params.names_to_look_up(); !hosts.names.empty()) {
        try {
            only_names_ = hosts.only_names;
            lookup_ = std::make_unique<NameLookup>(std::move(hosts.names));
            deadline_ = TimePoint::max();  // (the resolver's own timeouts bound it)
            return;
        } catch (const std::system_error&) {  // no thread now: libpq looks them up
        }
    }
    start_connect();
}

void Session::start_connect() {
    params_->use_addresses(lookup_ ? lookup_->found() : pq::ConnectParams::Addresses{});
    not_found_ = lookup_ ? lookup_->failures() : std::string();
    lookup_.reset();
    status_ = Status::closed;  // until libpq has begun (it throws when it cannot)
    conn_ = pq::Connection::start(*params_);
    status_ = Status::connecting;
    progress_ = pq::Connection::Progress::want_write;
    deadline_ = std::chrono::steady_clock::now() + per_host_;
}

void Session::begin_request(TimePoint reply_by) {
    if (status_ != Status::idle)
        throw Error("internal: a request on the " + label_ + " session while it is not idle");
    sent_at_ = std::chrono::steady_clock::now();
    status_ = Status::busy;
    deadline_ = reply_by;
}

void Session::send(const std::string& sql, const pq::Params& params, TimePoint reply_by) {
    begin_request(reply_by);
    conn_.send(sql, params);
}

void Session::send_yielding(const std::string& sql, const pq::Params& params, TimePoint reply_by) {
    begin_request(reply_by);
    heard_ = false;
    conn_.send_piped(sql, params);
}

void Session::send_behind(const std::string& sql, const pq::Params& params, TimePoint reply_by) {
    if (!can_send_behind())
        throw Error("internal: nothing to queue behind on the " + label_ + " session");
    behind_reply_by_ = reply_by;
    behind_sent_at_ = std::chrono::steady_clock::now();
    deadline_ = std::min(deadline_, reply_by);
    conn_.send_piped(sql, params);
}

short Session::events() const {
    if (lookup_) return POLLIN;
    switch (status_) {
        case Status::connecting:
            return progress_ == pq::Connection::Progress::want_read ? POLLIN : POLLOUT;
        case Status::idle:
            return POLLIN;
        case Status::busy:
            return static_cast<short>(POLLIN | (conn_.wants_write() ? POLLOUT : 0));
        case Status::closed:
            break;
    }
    return 0;
}

Session::Event Session::on_ready(short revents) {
    if (revents == 0) return Event::none;
    switch (status_) {
        case Status::connecting:
            if (lookup_) {
                if (!lookup_->done()) return Event::none;
                // (libpq is not made to ask the resolver again, and wait as long again)
                if (auto failed = lookup_->all_failed(); failed && only_names_) {
                    close();
                    throw ConnectionError(*failed);
                }
                start_connect();
                return Event::none;
            }
            try {
                return advance_connect();
            } catch (const ConnectionError& e) {  // (libpq says nothing of the hosts left out)
                if (not_found_.empty()) throw;
                throw ConnectionError(std::string(e.what()) + "\n" + not_found_);
            }
        case Status::idle:
            conn_.read_input();  // throws when the connection closed
            return Event::none;
        case Status::busy:
            return advance_request(revents);
        case Status::closed:
            break;
    }
    return Event::none;
}

// Connected: the setup statements go out one by one; the last reply
// completes the connect.
Session::Event Session::advance_connect() {
    progress_ = conn_.advance();
    if (progress_ != pq::Connection::Progress::ready) return Event::none;
    status_ = Status::idle;
    setting_up_ = true;
    setup_deadline_ = std::chrono::steady_clock::now() + per_host_;
    send_setup(0);
    return Event::none;
}

void Session::send_setup(std::size_t step) {
    setup_step_ = step;
    send(setup_.at(step), {}, setup_deadline_);
}

Session::Event Session::setup_replied() {
    if (setup_step_ + 1 < setup_.size()) {
        send_setup(setup_step_ + 1);
        return Event::none;
    }
    setting_up_ = false;
    setup_result_ = std::move(result_);
    return Event::connected;
}

Session::Event Session::advance_request(short revents) {
    if (revents & POLLOUT) conn_.flush();
    if (revents & (POLLIN | POLLERR | POLLHUP)) {
        conn_.read_input();
        heard_ = true;
    }
    std::optional<pq::Result> r;
    try {
        r = conn_.poll_result();
    } catch (const ConnectionError&) {
        throw;
    } catch (const Error&) {
        request_done();  // the request completed, with an error
        if (setting_up_) abandon();  // a session without its settings is of no use
        throw;
    }
    if (!r) return Event::none;
    request_done();
    result_ = std::move(*r);
    return setting_up_ ? setup_replied() : Event::replied;
}

// Idle again, unless a request queued behind the one that ended is still out.
void Session::request_done() {
    if (conn_.piped() > 0) {
        sent_at_ = behind_sent_at_;
        deadline_ = behind_reply_by_;
        behind_reply_by_ = TimePoint::max();
        return;
    }
    status_ = Status::idle;
    deadline_ = TimePoint::max();
}

void Session::check_deadline(TimePoint now) {
    if (now < deadline_) return;
    if (status_ == Status::connecting) {
        if (conn_.next_host()) {  // that host never answered: the DSN's next one
            deadline_ = now + per_host_;
            progress_ = pq::Connection::Progress::want_write;
            return;
        }
        throw ConnectionError("could not connect the " + label_ + " session within " +
                              format_duration(per_host_));
    }
    if (status_ == Status::busy)
        throw ConnectionError("no reply from the server in time (" + label_ + " session)");
}

void Session::cancel() noexcept {
    try {
        if (status_ == Status::busy) conn_.cancel(kCancelWait);
    } catch (...) {  // (out of memory: the request then ends by its own deadline)
    }
}

void Session::abandon() noexcept {
    lookup_.reset();
    conn_.close();
    status_ = Status::closed;
    deadline_ = TimePoint::max();
}

void Session::close() noexcept {
    try {
        if (status_ == Status::busy) conn_.cancel(kCancelWait);
    } catch (...) {  // (out of memory: nothing better to do than close)
    }
    lookup_.reset();
    conn_.close();
    status_ = Status::closed;
    deadline_ = TimePoint::max();
}

}  // namespace singleton_lock
