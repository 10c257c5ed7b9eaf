// One line per event on stderr: "<UTC time> singleton-lock[pid]: <message>".
#pragma once

#include <string>

namespace singleton_lock::cli {

void log(const std::string& message);

}  // namespace singleton_lock::cli
