#include "connection.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>

#include "conninfo_check.hpp"
#include "singleton_lock/errors.hpp"

namespace singleton_lock::pq {

namespace {

// Server notices (e.g. "terminating connection due to administrator command")
// must not reach stderr raw: the error paths report what matters, once.
void drop_notice(void*, const char*) {}

bool is_numeric(const std::string& host) {
    unsigned char address[sizeof(in6_addr)];
    return ::inet_pton(AF_INET, host.c_str(), address) == 1 ||
           ::inet_pton(AF_INET6, host.c_str(), address) == 1;
}

std::string trimmed(const char* text) {
    std::string s = text ? text : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s.empty() ? "unknown libpq error" : s;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The environment variable that, when set, overrides one of our defaults.
const char* env_for(const std::string& keyword) {
    if (keyword == "connect_timeout") return "PGCONNECT_TIMEOUT";
    if (keyword == "client_encoding") return "PGCLIENTENCODING";
    if (keyword == "gssencmode") return "PGGSSENCMODE";
    return nullptr;
}

using ParsedDsn = std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)>;

// A DSN libpq cannot parse (bad syntax, an unknown keyword, a malformed URI)
// will never connect: a usage error, not an outage to retry through.
ParsedDsn parse_dsn(const std::string& dsn) {
    char* error = nullptr;
    ParsedDsn parsed(PQconninfoParse(dsn.c_str(), &error), PQconninfoFree);
    if (parsed) return parsed;
    if (error == nullptr) throw std::bad_alloc();  // libpq's only other failure
    std::string message(error);
    PQfreemem(error);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
        message.pop_back();
    throw UsageError("invalid connection string: " + message);
}

std::string joined(const std::vector<std::string>& items, std::size_t first) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i)
        out += (i ? "," : "") + items[(first + i) % items.size()];
    return out;
}

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

ConnectParams::ConnectParams(const std::string& dsn,
                             const std::vector<std::pair<std::string, std::string>>& defaults) {
    const ParsedDsn parsed(parse_dsn(dsn));
    check_fixed_values(parsed.get());
    // A service file's settings apply only where nothing else is set, and a
    // Kerberos service name is the DSN's choice of GSSAPI: both outrank our
    // skipping of libpq's GSSAPI probe (kerberos_signs.hpp).
    const bool gss_chosen = !conninfo_setting(parsed.get(), "service", "PGSERVICE").empty() ||
                            !conninfo_setting(parsed.get(), "krbsrvname", nullptr).empty();
    for (const auto& [key, value] : defaults) {
        const char* env = env_for(key);
        if (env && std::getenv(env) && *std::getenv(env)) continue;
        if (key == "gssencmode" && gss_chosen) continue;
        kw_.push_back(key);
        val_.push_back(value);
    }
    kw_.emplace_back("fallback_application_name");
    val_.emplace_back("singleton-lock");
    kw_.emplace_back("dbname");  // expanded: the DSN's own settings override the defaults above
    val_.push_back(dsn);
    parse_hosts(parsed.get());
    build_pointers();
}

void ConnectParams::build_pointers() {
    kw_ptrs_.clear();
    val_ptrs_.clear();
    for (std::size_t i = 0; i < kw_.size(); ++i) {
        kw_ptrs_.push_back(kw_[i].c_str());
        val_ptrs_.push_back(val_[i].c_str());
    }
    kw_ptrs_.push_back(nullptr);
    val_ptrs_.push_back(nullptr);
}

std::optional<std::chrono::milliseconds> ConnectParams::connect_timeout() const {
    // The last value wins, as in libpq: our default, then the DSN's, then (for
    // the default only) PGCONNECT_TIMEOUT, which made us leave ours out.
    std::string value;
    if (const char* env = std::getenv("PGCONNECT_TIMEOUT")) value = env;
    for (std::size_t i = 0; i < kw_.size(); ++i)
        if (kw_[i] == "connect_timeout") value = val_[i];
    if (!dsn_connect_timeout_.empty()) value = dsn_connect_timeout_;
    const long seconds = std::atol(value.c_str());
    if (seconds <= 0) return std::nullopt;
    return std::chrono::seconds(std::max(seconds, 2L));  // libpq's floor
}

// Only what is needed to rotate the host list; lists that do not line up are
// refused by check_fixed_values, or left to libpq where it cannot tell (a
// service file).
void ConnectParams::parse_hosts(PQconninfoOption* parsed) {
    const auto hosts = split_conninfo_list(conninfo_setting(parsed, "host", "PGHOST"));
    const auto addrs = split_conninfo_list(conninfo_setting(parsed, "hostaddr", "PGHOSTADDR"));
    const auto ports = split_conninfo_list(conninfo_setting(parsed, "port", "PGPORT"));
    for (PQconninfoOption* o = parsed; o->keyword; ++o)
        if (std::strcmp(o->keyword, "connect_timeout") == 0 && o->val)
            dsn_connect_timeout_ = o->val;
    const std::size_t n = std::max(hosts.size(), addrs.size());
    if ((hosts.size() != n && hosts.size() != 1) || (addrs.size() != n && addrs.size() != 1) ||
        (ports.size() != n && ports.size() != 1))
        return;
    per_host_ports_ = ports.size() == n && n > 1;
    for (std::size_t i = 0; i < n; ++i)
        hosts_.push_back({hosts.size() == n ? hosts[i] : hosts[0],
                          addrs.size() == n ? addrs[i] : addrs[0],
                          ports.size() == n ? ports[i] : ports[0]});
}

ConnectParams::HostNames ConnectParams::names_to_look_up() const {
    HostNames out;
    out.only_names = !hosts_.empty();
    for (const Host& h : hosts_) {
        if (h.host.empty() || h.host[0] == '/' || h.host[0] == '@' || !h.hostaddr.empty() ||
            is_numeric(h.host)) {
            out.only_names = false;
            continue;
        }
        if (std::find(out.names.begin(), out.names.end(), h.host) == out.names.end())
            out.names.push_back(h.host);
    }
    return out;
}

std::optional<std::size_t> ConnectParams::find_host(const std::string& host,
                                                    const std::string& port) const {
    for (std::size_t i = 0; i < hosts_.size(); ++i) {
        const Host& h = hosts_[i];
        const bool same_host = h.host == host || (h.host.empty() && h.hostaddr == host);
        if (same_host && (h.port.empty() || h.port == port)) return i;
    }
    return std::nullopt;
}

// The hosts from host `first` on, each name a lookup found given as one entry
// per address; a name it found nothing for is left out while others remain
// (libpq would only ask the resolver again, and wait as long again).
std::vector<ConnectParams::Host> ConnectParams::hosts_to_try(std::size_t first) const {
    std::vector<Host> rotated, out;
    for (std::size_t i = 0; i < hosts_.size(); ++i) rotated.push_back(hosts_[(first + i) % hosts_.size()]);
    for (const Host& h : rotated) {
        const auto found = std::find_if(addresses_.begin(), addresses_.end(),
                                        [&](const auto& a) { return a.first == h.host; });
        if (!h.hostaddr.empty() || found == addresses_.end()) {
            out.push_back(h);
            continue;
        }
        for (const std::string& address : found->second) out.push_back({h.host, address, h.port});
    }
    return out.empty() ? rotated : out;
}

// libpq names a host given by hostaddr by its address alone: where the address
// is one a lookup found for exactly one name (and not written in the DSN), its
// message names the host as it does for a name it looked up itself.
std::string ConnectParams::naming_addresses(std::string message) const {
    const auto written = [&](const std::string& a) {
        return std::any_of(hosts_.begin(), hosts_.end(),
                           [&](const Host& h) { return h.host == a || h.hostaddr == a; });
    };
    for (const auto& [name, addresses] : addresses_)
        for (const std::string& a : addresses) {
            const auto owners = std::count_if(addresses_.begin(), addresses_.end(), [&](const auto& o) {
                return std::find(o.second.begin(), o.second.end(), a) != o.second.end();
            });
            if (owners != 1 || written(a)) continue;
            const std::string bare = "at \"" + a + "\", port ";
            const std::string named = "at \"" + name + "\" (" + a + "), port ";
            for (auto at = message.find(bare); at != std::string::npos;
                 at = message.find(bare, at + named.size()))
                message.replace(at, bare.size(), named);
        }
    return message;
}

ConnectParams ConnectParams::starting_at(std::size_t first) const {
    ConnectParams out;
    out.kw_ = kw_;
    out.val_ = val_;
    const bool rotated = hosts_.size() > 1 && first % hosts_.size() != 0;
    if (rotated || !addresses_.empty()) {
        // After the dbname entry: later keywords override the expanded DSN.
        std::vector<std::string> hosts, addrs, ports;
        for (const Host& h : hosts_to_try(first)) {
            hosts.push_back(h.host);
            addrs.push_back(h.hostaddr);
            ports.push_back(h.port);
        }
        const auto any = [](const std::vector<std::string>& v) {
            return std::any_of(v.begin(), v.end(), [](const std::string& x) { return !x.empty(); });
        };
        if (any(hosts)) {
            out.kw_.emplace_back("host");
            out.val_.push_back(joined(hosts, 0));
        }
        if (any(addrs)) {
            out.kw_.emplace_back("hostaddr");
            out.val_.push_back(joined(addrs, 0));
        }
        if (per_host_ports_) {  // (else one port, or none, applies to every entry)
            out.kw_.emplace_back("port");
            out.val_.push_back(joined(ports, 0));
        }
    }
    out.build_pointers();
    return out;
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
    Connection c(start_conn(params.starting_at(params.first_host())));
    c.params_ = &params;
    return c;
}

bool Connection::next_host() {
    if (!conn_ || !params_ || hosts_skipped_ + 1 >= params_->host_count()) return false;
    const char* host = PQhost(conn_.get());
    const char* port = PQport(conn_.get());
    const auto silent = params_->find_host(host ? host : "", port ? port : "");
    params_->rotate_after(silent.value_or(params_->first_host()));
    ++hosts_skipped_;
    conn_ = start_conn(params_->starting_at(params_->first_host()));
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
