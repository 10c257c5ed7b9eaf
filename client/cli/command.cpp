#include "command.hpp"

#include "program_interpreter.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>

extern char** environ;

namespace singleton_lock::cli {

namespace {

// 0 when path is an executable regular file, else the errno execve would give.
int check_executable(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno;
    if (!S_ISREG(st.st_mode)) return EACCES;
    return ::access(path.c_str(), X_OK) == 0 ? 0 : errno;
}

ResolvedCommand failed(int err, const std::string& what) {
    const bool missing = err == ENOENT || err == ENOTDIR;
    return {"", missing ? 127 : 126,
            what + (missing ? ": not found" : std::string(": ") + std::strerror(err))};
}

// The kernel runs at most 4 nested interpreters (BINPRM_MAX_RECURSION), then
// the loader of the last one.
constexpr int kInterpreterChainLimit = 5;

// An executable found: a script whose interpreter is missing, or a binary
// whose dynamic loader is, would fail only at execve, after the lease was
// taken; said now, as a shell would. The chain is followed as the kernel does
// (a script's interpreter is itself a script or a binary).
ResolvedCommand found(const std::string& path, const std::string& what) {
    std::string current = path;
    for (int depth = 0; depth < kInterpreterChainLimit; ++depth) {
        const ProgramInterpreter interpreter = interpreter_of(current);
        if (interpreter.path.empty()) break;
        const int err = check_executable(interpreter.path);
        if (err != 0)
            return failed(err, what + ": its interpreter " + interpreter.path + " (" +
                                   interpreter.how + (current == path ? "" : " of " + current) +
                                   ")");
        current = interpreter.path;
    }
    return {path, 0, ""};
}

}  // namespace

ResolvedCommand resolve_command(const std::string& command) {
    if (command.empty()) return failed(ENOENT, "COMMAND ''");
    if (command.find('/') != std::string::npos) {
        const int err = check_executable(command);
        return err == 0 ? found(command, "COMMAND " + command) : failed(err, "COMMAND " + command);
    }
    const char* env = std::getenv("PATH");
    const std::string path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
    int first_error = ENOENT;  // as execvp: a candidate we may not run beats "not found"
    for (std::size_t start = 0; start <= path.size();) {
        const auto end = path.find(':', start);
        std::string dir = path.substr(start, end == std::string::npos ? end : end - start);
        const std::string candidate = (dir.empty() ? "." : dir) + "/" + command;
        const int err = check_executable(candidate);
        if (err == 0) return found(candidate, "COMMAND " + candidate);
        if (err != ENOENT && err != ENOTDIR && first_error == ENOENT) first_error = err;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return failed(first_error, "COMMAND " + command + " (searched PATH)");
}

std::vector<std::string> command_environment(const std::string& name, const std::string& holder) {
    // Ours replace any inherited (a COMMAND that runs singleton-lock in turn):
    // a second entry of a name would be read by some programs, not by others.
    static constexpr const char* ours[] = {"SINGLETON_LOCK_NAME=", "SINGLETON_LOCK_TOKEN=",
                                           "SINGLETON_LOCK_HOLDER=", "SINGLETON_LOCK_LEADER_FD="};
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) {
        const std::string s(*e);
        if (std::none_of(std::begin(ours), std::end(ours),
                         [&](const char* p) { return s.rfind(p, 0) == 0; }))
            env.push_back(s);
    }
    env.push_back("SINGLETON_LOCK_NAME=" + name);
    env.push_back("SINGLETON_LOCK_HOLDER=" + holder);
    return env;
}

}  // namespace singleton_lock::cli
