// Heartbeats of session-bound leases commit without waiting for the WAL flush.
//
// Why that is safe: a heartbeat lost in a crash only makes the stored expiry
// earlier than its holder believes. For a session-bound lease that never
// matters: the crash (or failover) also ends the holder's session, so after
// recovery the lease is orphaned, free at once, whatever its expiry says —
// durable heartbeats would not have kept it either — and the holder, whose
// connection died with the server, treats that as a lost lease. For an
// unbound lease the stored expiry is all there is, so its heartbeats stay
// durable. Acquisitions are always durable (a token is never reissued).
//
// Only when the heartbeat is the transaction's sole write: the commit mode of
// an application's own writes is never changed.
#pragma once

namespace singleton_lock {

// Call with whether the transaction had written before the heartbeat's
// UPDATE; decided again at pre-commit (no WAL written since).
void skip_flush_if_sole_write(bool transaction_wrote_before);

// Registered once from _PG_init.
void install_heartbeat_flush_policy();

}  // namespace singleton_lock
