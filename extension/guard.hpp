// The one boundary between C++ and PostgreSQL error handling.
//
// PostgreSQL reports errors with ereport(ERROR), a longjmp that must never
// unwind a C++ frame owning objects with destructors; C++ reports errors with
// exceptions, which must never reach PostgreSQL. Every call from the
// PostgreSQL side into ordinary C++ goes through cpp_call(): it catches any
// exception, keeps the message in a plain buffer and raises the ereport only
// once the try/catch (and every C++ frame below it) is gone.
//
// The rest of the PostgreSQL-side code is C-style: no RAII objects live in
// frames that call PostgreSQL APIs, so an ereport there unwinds nothing.
#pragma once

extern "C" {
#include "postgres.h"
}

#include <cstring>
#include <exception>

namespace singleton_lock {

[[noreturn]] void raise_cpp_failure(const char* what);

template <typename Fn>
auto cpp_call(Fn&& fn) -> decltype(fn()) {
    char message[256];
    try {
        return fn();
    } catch (const std::exception& e) {
        std::strncpy(message, e.what(), sizeof message - 1);
        message[sizeof message - 1] = '\0';
    } catch (...) {
        std::strcpy(message, "unknown C++ exception");
    }
    raise_cpp_failure(message);
}

}  // namespace singleton_lock
