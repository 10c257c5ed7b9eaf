// A transaction that took, renewed, released or bound a lease cannot be
// prepared for two-phase commit: waking waiters and binding sessions belong
// to the session that commits, and COMMIT PREPARED runs elsewhere (a
// prepared release would leave waiters asleep until the lease's old expiry).
// singleton_assert stays allowed: its row lock fences a prepared transaction
// exactly as an ordinary one.
#pragma once

namespace singleton_lock {

// Marks the current transaction; PREPARE TRANSACTION then fails with 0A000.
void forbid_prepare(const char* what);

// Registered once from _PG_init.
void install_prepare_guard();

}  // namespace singleton_lock
