// One line per event on stderr: "<UTC time> singleton-lock[pid]: <message>".
//
// Never blocks: a reader that stops reading stderr (a stuck journald, a log
// shipper, a pipe nobody drains) must not freeze the loop that renews the
// lease. Lines stderr cannot take now wait in a bounded backlog (64 KiB) and
// are written, in order, once it can; beyond that they are dropped, and the
// next line written says how many. One thread logs (the run loop).
#pragma once

#include <chrono>
#include <string>

namespace singleton_lock::cli {

void log(const std::string& message);

// Writes what waits in the backlog as far as stderr takes it now (the run
// loop calls it every round).
void flush_log();

// At exit: waits up to max_wait for stderr to take the backlog.
void drain_log(std::chrono::milliseconds max_wait);

}  // namespace singleton_lock::cli
