#include "connection.hpp"

#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>

#include "singleton_lock/errors.hpp"

namespace singleton_lock::pq {

namespace {

// Server notices (e.g. "terminating connection due to administrator command")
// must not reach stderr raw: the error paths report what matters, once.
void drop_notice(void*, const char*) {}

std::string trimmed(const char* text) {
    std::string s = text ? text : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s.empty() ? "unknown libpq error" : s;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

std::string Result::text(int row, int col) const {
    if (!r_ || is_null(row, col)) return {};
    return PQgetvalue(r_.get(), row, col);
}

void check(PGconn* conn, const PGresult* result) {
    if (result == nullptr) throw ConnectionError(trimmed(conn ? PQerrorMessage(conn) : nullptr));
    const ExecStatusType status = PQresultStatus(result);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return;
    const std::string message = trimmed(PQresultErrorMessage(result));
    const char* code_text = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    if (code_text == nullptr || (conn != nullptr && PQstatus(conn) == CONNECTION_BAD))
        throw ConnectionError(message);
    const std::string code = code_text;
    if (starts_with(code, "08") || code == "57P01" || code == "57P02" || code == "57P03")
        throw ConnectionError(message);  // connection failure, server shutting down / starting
    if (starts_with(code, "22")) throw InvalidArgumentError(message, code);
    if (code == "42501") throw PermissionDeniedError(message, code);
    if (code == "42883" || code == "42P01" || code == "3F000")
        throw ExtensionMissingError(
            message + " (is the extension installed in this database, in the schema named, and "
                      "at the version needed? CREATE EXTENSION singleton_lock, ALTER EXTENSION "
                      "singleton_lock UPDATE)",
            code);
    if (code == "57014") throw QueryCanceledError(message, code);
    throw ServerError(message, code);
}

Connection Connection::open(const ConnectParams& params) {
    ConnPtr c(PQconnectdbParams(params.keywords(), params.values(), 1));
    if (!c) throw ConnectionError("out of memory");
    if (PQstatus(c.get()) != CONNECTION_OK) throw ConnectionError(trimmed(PQerrorMessage(c.get())));
    PQsetNoticeProcessor(c.get(), drop_notice, nullptr);
    return Connection(std::move(c));
}

ConnPtr Connection::start_conn(const ConnectParams& params) {
    ConnPtr c(PQconnectStartParams(params.keywords(), params.values(), 1));
    if (!c) throw ConnectionError("out of memory");
    if (PQstatus(c.get()) == CONNECTION_BAD)
        throw ConnectionError(trimmed(PQerrorMessage(c.get())));
    PQsetNoticeProcessor(c.get(), drop_notice, nullptr);
    return c;
}

Connection Connection::start(ConnectParams& params) {
    Connection c(start_conn(params.for_libpq()));
    c.params_ = &params;
    return c;
}

bool Connection::next_host() {
    if (!conn_ || !params_ || hosts_skipped_ + 1 >= params_->entry_count()) return false;
    const char* host = PQhost(conn_.get());
    const char* addr = PQhostaddr(conn_.get());
    const char* port = PQport(conn_.get());
    params_->set_aside(host ? host : "", addr ? addr : "", port ? port : "");
    ++hosts_skipped_;
    conn_ = start_conn(params_->for_libpq());
    in_flight_ = false;
    return true;
}

Connection::Progress Connection::advance() {
    switch (PQconnectPoll(conn_.get())) {
        case PGRES_POLLING_READING:
            return Progress::want_read;
        case PGRES_POLLING_WRITING:
            return Progress::want_write;
        case PGRES_POLLING_OK:
            if (PQsetnonblocking(conn_.get(), 1) != 0)
                throw ConnectionError(trimmed(PQerrorMessage(conn_.get())));
            return Progress::ready;
        default: {
            const std::string why = trimmed(PQerrorMessage(conn_.get()));
            throw ConnectionError(params_ ? params_->naming_addresses(why) : why);
        }
    }
}

namespace {

struct RawParams {
    std::vector<const char*> values;
    explicit RawParams(const Params& params) {
        values.reserve(params.size());
        for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    }
};

}  // namespace

Result Connection::exec(const std::string& sql, const Params& params) {
    RawParams raw(params);
    ResultPtr r(PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(raw.values.size()), nullptr,
                             raw.values.data(), nullptr, nullptr, 0));
    check(conn_.get(), r.get());
    return Result(std::move(r));
}

void Connection::send(const std::string& sql, const Params& params) {
    RawParams raw(params);
    if (PQsendQueryParams(conn_.get(), sql.c_str(), static_cast<int>(raw.values.size()), nullptr,
                          raw.values.data(), nullptr, nullptr, 0) != 1)
        throw ConnectionError(trimmed(PQerrorMessage(conn_.get())));
    in_flight_ = true;
    pending_.reset();
    pending_error_ = false;
    flush();
}

bool Connection::wants_write() const { return writing_; }

void Connection::flush() {
    const int r = PQflush(conn_.get());
    if (r < 0) throw ConnectionError(trimmed(PQerrorMessage(conn_.get())));
    writing_ = (r == 1);
}

void Connection::read_input() {
    if (PQconsumeInput(conn_.get()) != 1 || PQstatus(conn_.get()) == CONNECTION_BAD)
        throw ConnectionError(trimmed(PQerrorMessage(conn_.get())));
}

std::optional<Result> Connection::poll_result() {
    if (!in_flight_) return std::nullopt;
    if (piped_ > 0) return poll_piped_result();
    while (PQisBusy(conn_.get()) == 0) {
        PGresult* r = PQgetResult(conn_.get());
        if (r == nullptr) {
            in_flight_ = false;
            ResultPtr done = std::move(pending_);
            check(conn_.get(), done.get());
            return Result(std::move(done));
        }
        keep(r);
    }
    if (PQstatus(conn_.get()) == CONNECTION_BAD)
        throw ConnectionError(trimmed(PQerrorMessage(conn_.get())));
    return std::nullopt;
}

// Keeps the first error of a request, else its last result.
void Connection::keep(PGresult* r) {
    const ExecStatusType st = PQresultStatus(r);
    const bool failed = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK;
    if (!pending_ || (failed && !pending_error_)) {
        pending_.reset(r);
        pending_error_ = failed;
    } else {
        PQclear(r);
    }
}

void Connection::send_piped(const std::string& sql, const Params& params) {
    if (piped_ == 0) {
        if (in_flight_ || PQenterPipelineMode(conn_.get()) != 1)
            throw ConnectionError("cannot enter pipeline mode: " +
                                  trimmed(PQerrorMessage(conn_.get())));
        pending_.reset();
        pending_error_ = false;
    }
    RawParams raw(params);
    if (PQsendQueryParams(conn_.get(), sql.c_str(), static_cast<int>(raw.values.size()), nullptr,
                          raw.values.data(), nullptr, nullptr, 0) != 1 ||
        PQpipelineSync(conn_.get()) != 1)
        throw ConnectionError(trimmed(PQerrorMessage(conn_.get())));
    ++piped_;
    in_flight_ = true;
    flush();
}

// Each piped request: its results, NULL, then the PIPELINE_SYNC of its Sync.
std::optional<Result> Connection::poll_piped_result() {
    bool ended = false;  // a NULL just came: another one means nothing more is in yet
    while (PQisBusy(conn_.get()) == 0) {
        PGresult* r = PQgetResult(conn_.get());
        if (r == nullptr) {
            if (ended) break;
            ended = true;
            continue;
        }
        ended = false;
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
            keep(r);
            continue;
        }
        PQclear(r);
        ResultPtr done = std::move(pending_);
        pending_error_ = false;
        if (--piped_ == 0) leave_pipeline();
        check(conn_.get(), done.get());
        return Result(std::move(done));
    }
    if (PQstatus(conn_.get()) == CONNECTION_BAD)
        throw ConnectionError(trimmed(PQerrorMessage(conn_.get())));
    return std::nullopt;
}

// Every piped result is in: back to one request at a time.
void Connection::leave_pipeline() {
    in_flight_ = false;
    if (PQexitPipelineMode(conn_.get()) == 1) return;
    while (PQisBusy(conn_.get()) == 0) {  // (a trailing NULL)
        PGresult* r = PQgetResult(conn_.get());
        if (r == nullptr) break;
        PQclear(r);
    }
    if (PQexitPipelineMode(conn_.get()) != 1)
        throw ConnectionError("cannot leave pipeline mode: " + trimmed(PQerrorMessage(conn_.get())));
}

std::vector<std::pair<int, std::string>> Connection::take_notifications() {
    std::vector<std::pair<int, std::string>> out;
    if (!conn_) return out;
    while (PGnotify* n = PQnotifies(conn_.get())) {
        out.emplace_back(n->be_pid, n->extra ? n->extra : "");
        PQfreemem(n);
    }
    return out;
}

void Connection::cancel(std::chrono::milliseconds limit) {
    if (!conn_ || !in_flight_) return;
    PGcancel* handle = PQgetCancel(conn_.get());
    if (handle == nullptr) return;
    struct Shared {
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
    };
    auto shared = std::make_shared<Shared>();
    try {
        std::thread([handle, shared] {
            char err[256];
            (void)PQcancel(handle, err, sizeof err);
            PQfreeCancel(handle);
            {
                std::lock_guard<std::mutex> lock(shared->m);
                shared->done = true;
            }
            shared->cv.notify_all();
        }).detach();
    } catch (const std::system_error&) {
        PQfreeCancel(handle);
        return;
    }
    std::unique_lock<std::mutex> lock(shared->m);
    shared->cv.wait_for(lock, limit, [&] { return shared->done; });
}

std::string quote_ident(const std::string& ident) {
    std::string out = "\"";
    for (char c : ident) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

}  // namespace singleton_lock::pq
