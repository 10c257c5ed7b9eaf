#include "call_context.hpp"
#include "client_socket.hpp"

#include <cerrno>
#include <sys/socket.h>

extern "C" {
#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_proc.h"
#include "utils/syscache.h"
// From libpq/libpq.h, which drags in GSSAPI headers a build may not have.
extern bool pq_check_connection(void);
}

namespace singleton_lock {

ApiCall begin_call(FunctionCallInfo fcinfo, const char* fn, Access access) {
    if (RecoveryInProgress())
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("%s: cannot run on a read-only standby", fn),
                        errdetail("Leases are written on the primary server."),
                        errhint("Connect to the primary, for example with several hosts and "
                                "target_session_attrs=read-write in the connection string.")));
    // (Else PostgreSQL's own refusal would name our internal SELECT ... FOR UPDATE.)
    if (access == Access::writes && XactReadOnly)
        ereport(ERROR,
                (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                 errmsg("%s: the transaction is read-only", fn),
                 errdetail("The function writes or locks the lease's row. The server is a "
                           "primary: the transaction began READ ONLY, or "
                           "default_transaction_read_only is on for the session, role or "
                           "database."),
                 errhint("Call it in a read-write transaction, e.g. after SET "
                         "default_transaction_read_only = off (singleton-lock and the client "
                         "libraries do so in their own sessions).")));
    ApiCall call;
    call.fn = fn;
    call.caller = GetUserId();
    HeapTuple proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
    if (!HeapTupleIsValid(proc))
        elog(ERROR, "singleton_lock: cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
    Form_pg_proc form = reinterpret_cast<Form_pg_proc>(GETSTRUCT(proc));
    call.schema = form->pronamespace;
    call.owner = form->proowner;
    ReleaseSysCache(proc);
    return call;
}

namespace {

// What one non-blocking peek at the client's socket tells for certain.
enum class Peek { connected, closed, unsure };

// Nothing to read and no end of stream: the client is there. The end of the
// stream with nothing before it: gone. Anything else (pending bytes, which
// may be a Terminate message followed by the close; an error) is left to
// PostgreSQL's own check. One syscall instead of its three on the common path.
Peek peek_client(pgsocket sock) {
    char byte;
    ssize_t n = recv(sock, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return Peek::closed;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Peek::connected;
    return Peek::unsure;
}

}  // namespace

void require_client_connected() {
    pgsocket sock = client_socket();
    if (sock == PGINVALID_SOCKET) return;
    Peek seen = peek_client(sock);
    if (seen == Peek::connected || (seen == Peek::unsure && pq_check_connection())) return;
    ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                    errmsg("singleton_lock: the client has disconnected; nothing was changed")));
}

}  // namespace singleton_lock
