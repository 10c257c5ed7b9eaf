#include "arguments.hpp"

extern "C" {
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
}

#include "guard.hpp"
#include "lease_rules.hpp"
#include "pg_compat.hpp"
#include "session_binding.hpp"
#include "settings.hpp"
#include "waiting.hpp"

namespace singleton_lock {

namespace {

void require_not_null(FunctionCallInfo fcinfo, int argno, const char* fn, const char* arg) {
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("%s: argument \"%s\" must not be NULL", fn, arg)));
}

// A lease name or holder id: 1..max characters, not only white space, no
// control characters (they would be invisible or misleading in logs).
void check_label_arg(const text* value, const char* fn, const char* arg, int max_chars) {
    std::string_view bytes(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
    bool utf8 = GetDatabaseEncoding() == PG_UTF8;
    LabelCheck check = cpp_call([&] { return check_label(bytes, utf8, max_chars); });
    const char* problem = nullptr;
    switch (check.problem) {
        case LabelProblem::None:
            return;
        case LabelProblem::Empty:
        case LabelProblem::TooLong:
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("%s: argument \"%s\" must be 1 to %d characters long", fn, arg,
                                   max_chars),
                            errdetail("It has %d characters.", check.characters)));
            break;
        case LabelProblem::OnlyWhiteSpace:
            problem = "must not be only white space";
            break;
        case LabelProblem::ControlCharacter:
            problem = "must not contain control characters";
            break;
    }
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("%s: argument \"%s\" %s", fn, arg, problem)));
}

int64 interval_arg_micros(FunctionCallInfo fcinfo, int argno, const char* fn, const char* arg) {
    const Interval* value = PG_GETARG_INTERVAL_P(argno);
#if PG_VERSION_NUM >= 170000
    if (INTERVAL_NOT_FINITE(value))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"%s\" must be finite", fn, arg)));
#endif
    auto micros = cpp_call([&] { return interval_micros(value->time, value->day, value->month); });
    if (!micros)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"%s\" is out of range", fn, arg)));
    return *micros;
}

}  // namespace

LeaseKey name_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    require_not_null(fcinfo, argno, fn, "name");
    LeaseKey key;
    key.name = PG_GETARG_TEXT_PP(argno);
    check_label_arg(key.name, fn, "name", kMaxNameChars);
    key.name_len = VARSIZE_ANY_EXHDR(key.name);
    key.name_str = text_to_cstring(key.name);
    key.name_hash = lease_name_hash(VARDATA_ANY(key.name), key.name_len);
    return key;
}

int64 token_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    require_not_null(fcinfo, argno, fn, "token");
    return PG_GETARG_INT64(argno);
}

int64 ttl_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    require_not_null(fcinfo, argno, fn, "ttl");
    int64 ttl = interval_arg_micros(fcinfo, argno, fn, "ttl");
    if (ttl <= 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"ttl\" must be greater than zero", fn)));
    if (ttl > static_cast<int64>(max_ttl_seconds) * USECS_PER_SEC)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"ttl\" must not exceed singleton_lock.max_ttl "
                               "(%d s)",
                               fn, max_ttl_seconds)));
    return ttl;
}

const char* holder_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    if (PG_ARGISNULL(argno)) {
        if (!bind_session)
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                     errmsg("%s: argument \"holder\" must not be NULL when "
                            "singleton_lock.bind_session is off",
                            fn),
                     errdetail("An unbound lease has no session to derive a holder id from.")));
        return default_holder();
    }
    text* holder = PG_GETARG_TEXT_PP(argno);
    check_label_arg(holder, fn, "holder", kMaxHolderChars);
    return text_to_cstring(holder);
}

int64 wait_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    require_not_null(fcinfo, argno, fn, "wait");
    int64 wait = interval_arg_micros(fcinfo, argno, fn, "wait");
    if (wait < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"wait\" must not be negative", fn)));
    return wait;
}

int32 priority_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    require_not_null(fcinfo, argno, fn, "priority");
    return PG_GETARG_INT32(argno);
}

const char* reason_arg(FunctionCallInfo fcinfo, int argno, const char* fn) {
    if (PG_ARGISNULL(argno)) return nullptr;
    text* reason = PG_GETARG_TEXT_PP(argno);
    int chars = pg_mbstrlen_with_len(VARDATA_ANY(reason), VARSIZE_ANY_EXHDR(reason));
    if (chars > 1000)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: argument \"reason\" must be at most 1000 characters long", fn)));
    return text_to_cstring(reason);
}

}  // namespace singleton_lock
