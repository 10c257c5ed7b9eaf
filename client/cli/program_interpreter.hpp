// The program the kernel loads to run an executable: a script's #! interpreter
// or an ELF binary's dynamic loader (PT_INTERP). When it is missing, execve
// fails only after the lease was taken; singleton-lock checks it first.
#pragma once

#include <string>

namespace singleton_lock::cli {

struct ProgramInterpreter {
    std::string path;      // "" when the file names none (static binary, unreadable, other format)
    const char* how = "";  // how the file names it: "#! line" or "ELF PT_INTERP"
};

ProgramInterpreter interpreter_of(const std::string& executable);

}  // namespace singleton_lock::cli
