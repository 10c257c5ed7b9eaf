// COMMAND as singleton-lock runs it: where its executable is (checked before
// the lease is taken) and its environment.
#pragma once

#include <string>
#include <vector>

namespace singleton_lock::cli {

struct ResolvedCommand {
    std::string path;   // the executable, when found
    int failure = 0;    // 0, or the exit code to give up with: 126 not executable, 127 not found
    std::string error;  // why, for the log
};

// Like execvp: a name without '/' is searched in PATH; a path must exist and be
// an executable regular file, and so must the interpreter the kernel would load
// for it (a script's #! line, an ELF binary's dynamic loader).
ResolvedCommand resolve_command(const std::string& command);

// The current environment without SINGLETON_LOCK_*, plus SINGLETON_LOCK_NAME and
// SINGLETON_LOCK_HOLDER (the token is added when COMMAND starts).
std::vector<std::string> command_environment(const std::string& name, const std::string& holder);

}  // namespace singleton_lock::cli
