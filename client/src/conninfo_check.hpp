// Connection settings that can never connect, found before the first attempt.
//
// libpq accepts `port=abc` or `sslmode=requre` when it parses a DSN and
// refuses them only when asked to connect, with the same words as a server
// that is down; retried, such a mistake would keep a standby waiting for ever.
// These checks repeat libpq's own rules for the values it checks before any
// I/O, so that the caller can treat them as the usage errors they are.
#pragma once

#include <libpq-fe.h>

#include <string>
#include <vector>

namespace singleton_lock::pq {

// Throws UsageError ("invalid connection string: <libpq's words>") for a
// value libpq refuses whenever a connect gets to it: a port that is not a number in
// 1-65535, host/hostaddr/port lists that do not line up, an sslmode,
// gssencmode, channel_binding or target_session_attrs outside its set.
// `parsed` is PQconninfoParse's result; PG* variables count where the DSN is
// silent. When in doubt it passes, leaving the value to libpq: with a service
// file (whose settings it cannot see), or under a libpq whose rules it does
// not know (other than 14-18).
void check_fixed_values(const PQconninfoOption* parsed);

// The DSN's value of `keyword` (when not empty), else the environment
// variable `env` (may be null), else "". `parsed` is PQconninfoParse's result.
std::string conninfo_setting(const PQconninfoOption* parsed, const char* keyword,
                             const char* env);

// A host, hostaddr or port list as libpq splits it: at every comma, empty
// elements kept ("" is one empty element).
std::vector<std::string> split_conninfo_list(const std::string& list);

}  // namespace singleton_lock::pq
