// One queue for a lease's fenced transactions and the calls that end its
// tenure (release, force release, pause).
//
// singleton_assert's FOR KEY SHARE row lock makes those calls wait for open
// fenced transactions, but row locks are not queued fairly: a new
// FOR KEY SHARE joins the holders while a FOR UPDATE waits, so fenced
// transactions that keep overlapping (several workers, back to back) could
// hold a release back for as long as they went on. The lock manager's
// heavyweight locks are queued: a request waits behind an earlier one it
// conflicts with. So every fenced transaction also holds a share lock on the
// lease's fence tag (lock_tags.hpp) until it ends, and a call that ends the
// tenure takes it exclusively before it locks the row: it waits for the open
// fenced transactions only, and fenced transactions begun after it wait for
// it, then find the tenure over.
//
// Both are transaction locks taken before the row lock, in this order. One
// deadlock is new: a transaction that already locked the row (an acquire that
// renewed) and then releases, while an assert of the same lease waits for
// that row; PostgreSQL's detector cancels one (docs/sql-reference.md). A
// release closes the gate only for the lease's current token (a guessed token
// queues nothing).
#pragma once

extern "C" {
#include "postgres.h"
}

namespace singleton_lock {

// singleton_assert: until the transaction ends (an error releases it).
void join_fence(uint64 name_hash);
// Release, force release, pause: until the transaction ends, or reopen_fence.
void close_fence(uint64 name_hash);
// A call that closed the gate and then ended nothing lets the queue go on at once.
void reopen_fence(uint64 name_hash);

}  // namespace singleton_lock
