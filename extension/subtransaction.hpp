// Internal subtransactions with PostgreSQL's documented discipline (the one
// PL/Python and PL/Tcl follow for SPI calls):
//   begin; on success release (or roll back, if asked) ours;
//   on error: save the error in the caller's memory context, roll back and
//   release OUR subtransaction, restore memory context and resource owner,
//   then re-throw.
// An error must never leave our subtransaction open: the caller's handler
// (a PL/pgSQL EXCEPTION block, ROLLBACK TO SAVEPOINT) would then roll back
// ours instead of its own, leaving the session with our saved user id (the
// extension owner's) and a corrupted transaction stack.
//
// C-style by design: an error here is a longjmp through these frames, so the
// body must not own objects with destructors.
#pragma once

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

namespace singleton_lock {

// Runs body() in an internal subtransaction; keep(result) decides whether
// its effects are kept (released into the caller's transaction) or rolled
// back (say, to drop a row lock an attempt must not keep).
template <typename Body, typename Keep>
auto in_subtransaction(Body body, Keep keep) -> decltype(body()) {
    MemoryContext caller_context = CurrentMemoryContext;
    ResourceOwner caller_owner = CurrentResourceOwner;
    decltype(body()) result;
    BeginInternalSubTransaction(nullptr);
    MemoryContextSwitchTo(caller_context);
    PG_TRY();
    {
        result = body();
        if (keep(result))
            ReleaseCurrentSubTransaction();
        else
            RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller_context);
        CurrentResourceOwner = caller_owner;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        ErrorData* error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(caller_context);
        CurrentResourceOwner = caller_owner;
        ReThrowError(error);
    }
    PG_END_TRY();
    return result;
}

}  // namespace singleton_lock
