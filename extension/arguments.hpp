// Argument checks of the SQL entry points. The functions are not STRICT: a
// NULL gets a clear error (22004) rather than a silent NULL, a value out of
// range 22023, each naming the function and the argument.
#pragma once

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/timestamp.h"
}

#include "lease_store.hpp"

namespace singleton_lock {

LeaseKey name_arg(FunctionCallInfo fcinfo, int argno, const char* fn);
int64 token_arg(FunctionCallInfo fcinfo, int argno, const char* fn);
// 0 < ttl <= singleton_lock.max_ttl, in microseconds.
int64 ttl_arg(FunctionCallInfo fcinfo, int argno, const char* fn);
// NULL: the session's default holder id (refused when bind_session is off).
const char* holder_arg(FunctionCallInfo fcinfo, int argno, const char* fn);
// wait >= 0, in microseconds.
int64 wait_arg(FunctionCallInfo fcinfo, int argno, const char* fn);
// Any integer (1.1); not NULL.
int32 priority_arg(FunctionCallInfo fcinfo, int argno, const char* fn);
// Free text up to 1000 characters; NULL allowed (1.1).
const char* reason_arg(FunctionCallInfo fcinfo, int argno, const char* fn);

}  // namespace singleton_lock
