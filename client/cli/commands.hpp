// The subcommands of singleton-lock; each returns the process exit code.
#pragma once

#include "args.hpp"

namespace singleton_lock::cli {

int run_command(const RunArgs& args);
int status_command(const StatusArgs& args);
int release_command(const ReleaseArgs& args);
int pause_command(const PauseArgs& args);
int resume_command(const PauseArgs& args);

}  // namespace singleton_lock::cli
