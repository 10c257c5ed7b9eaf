// What every SQL entry point does around its work, in one place.
//
// The functions run with the caller's rights (SECURITY INVOKER, search_path
// pinned), so the caller's role is known: authority over a lease is scoped to
// the role that acquired it. Only around their own reads and writes of the
// state table do they act as the extension owner, in a security-restricted
// operation, and they restore the caller's user id on every path, including
// errors (which a caller may catch and carry on from).
#pragma once

extern "C" {
#include "postgres.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
}

#include "plans.hpp"

namespace singleton_lock {

struct ApiCall {
    const char* fn;  // for messages
    Oid caller;      // the role that called (current_user)
    Oid schema;      // the extension's schema
    Oid owner;       // the extension's owner
};

// What a function does to leases: every one but the watch writes or locks
// rows (a check like singleton_assert too), which a read-only transaction
// refuses.
enum class Access { writes, reads };

// Refuses on a read-only standby (25006, with a hint to connect to the
// primary) and, for a function that writes, in a read-only transaction (25006
// too, naming default_transaction_read_only); finds caller, schema and owner.
ApiCall begin_call(FunctionCallInfo fcinfo, const char* fn, Access access = Access::writes);

// Runs body() as the extension owner inside one SPI connection.
// C-style by design (see subtransaction.hpp): body() must not own objects
// with destructors, since an error is a longjmp through it.
template <typename Body>
void as_extension_owner(const ApiCall& call, Body body) {
    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(call.owner, saved_context | SECURITY_LOCAL_USERID_CHANGE |
                                           SECURITY_RESTRICTED_OPERATION);
    PG_TRY();
    {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "singleton_lock: SPI_connect failed");
        use_plans_of(call.schema);
        body();
        SPI_finish();
    }
    PG_FINALLY();
    {
        SetUserIdAndSecContext(saved_user, saved_context);
    }
    PG_END_TRY();
}

// A late call from a client that has gone away (an abandoned query that
// waited on a row lock, say) must change nothing: raises 08006 then.
// Note: it may consume a pending latch wake-up; call it before reading the
// state a wake-up is about, never between that read and the sleep.
void require_client_connected();

}  // namespace singleton_lock
