// Typed errors of the singleton_lock client. No libpq types here.
#pragma once

#include <stdexcept>
#include <string>

namespace singleton_lock {

// Base of every error the library throws.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Options refused by the client itself (bad duration, grace >= ttl/2, ...).
class UsageError : public Error {
  public:
    using Error::Error;
};

// The database could not be reached, the connection broke, or a reply did not
// arrive in time. Always worth retrying (for a standby).
class ConnectionError : public Error {
  public:
    using Error::Error;
};

// The server answered with an error; sqlstate() is its SQLSTATE code.
class ServerError : public Error {
  public:
    ServerError(const std::string& message, std::string sqlstate)
        : Error(message), sqlstate_(std::move(sqlstate)) {}
    const std::string& sqlstate() const noexcept { return sqlstate_; }

  private:
    std::string sqlstate_;
};

// SQLSTATE class 22 (22023 invalid_parameter_value, 22004 null_value_not_allowed, ...).
class InvalidArgumentError : public ServerError {
  public:
    using ServerError::ServerError;
};

// 42501 insufficient_privilege: the role lacks EXECUTE (see the GRANT in the README).
class PermissionDeniedError : public ServerError {
  public:
    using ServerError::ServerError;
};

// 42883 / 42P01 / 3F000: function, relation or schema missing, usually
// "CREATE EXTENSION singleton_lock" was not run in this database.
class ExtensionMissingError : public ServerError {
  public:
    using ServerError::ServerError;
};

// 57014 query_canceled (statement_timeout or an explicit cancel).
class QueryCanceledError : public ServerError {
  public:
    using ServerError::ServerError;
};

}  // namespace singleton_lock
