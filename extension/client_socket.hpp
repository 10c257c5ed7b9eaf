// The socket of this backend's client connection (PGINVALID_SOCKET for a
// backend without one), so that waits can end the moment the client goes.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace singleton_lock {

pgsocket client_socket();

// Sends the client what the protocol has queued of this statement's reply so
// far (ParseComplete, BindComplete, RowDescription). It tells the client that
// the server has read the statement: a statement the client sends once it got
// this arrives in a later read of the socket, which wake_on_client_input
// notices (one read together with this statement would go unnoticed).
void flush_reply_so_far();

}  // namespace singleton_lock
