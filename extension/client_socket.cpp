// libpq-be.h pulls in the GSSAPI headers when the server was built with
// GSSAPI, and a build host may lack them (Debian's server-dev package does
// not depend on them). struct Port has the same layout either way (its GSSAPI
// state sits behind a pointer), so it is read here without them.
extern "C" {
#include "postgres.h"
#undef ENABLE_GSS
#include "libpq/libpq-be.h"
#include "libpq/libpq.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
}

#include "client_socket.hpp"

namespace singleton_lock {

pgsocket client_socket() { return MyProcPort != nullptr ? MyProcPort->sock : PGINVALID_SOCKET; }

void flush_reply_so_far() {
    if (whereToSendOutput == DestRemote) (void)pq_flush();  // (EOF: the wait notices the client gone)
}

}  // namespace singleton_lock
