// Exit codes of singleton-lock (documented in client/README.md).
#pragma once

namespace singleton_lock::cli::exit_code {

constexpr int ok = 0;
constexpr int error = 1;       // cannot connect (status/release), fatal server error
                               // (extension missing, permission denied, invalid name), I/O failure
constexpr int usage = 2;       // bad command line
constexpr int lease_lost = 3;  // run: the lease was lost while COMMAND ran
constexpr int not_held = 4;    // release --force: there was no lease to free; resume: not paused
constexpr int wait_expired = 75;  // run: --wait ran out, COMMAND never started (EX_TEMPFAIL)
constexpr int cannot_execute = 126;
constexpr int not_found = 127;
constexpr int signal_base = 128;  // run: stopped by signal N while standby -> 128+N;
                                  // COMMAND died of signal N -> 128+N

}  // namespace singleton_lock::cli::exit_code
