// The socket of this backend's client connection (PGINVALID_SOCKET for a
// backend without one), so that waits can end the moment the client goes.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace singleton_lock {

pgsocket client_socket();

}  // namespace singleton_lock
