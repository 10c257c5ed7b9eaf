#include "log.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace singleton_lock::cli {

void log(const std::string& message) {
    // One line per event: libpq messages span several lines.
    std::string line;
    line.reserve(message.size());
    for (char c : message) {
        if (c == '\n' || c == '\t' || c == '\r') c = ' ';
        if (c == ' ' && !line.empty() && line.back() == ' ') continue;
        line += c;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    timeval tv{};
    gettimeofday(&tv, nullptr);
    tm utc{};
    gmtime_r(&tv.tv_sec, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    std::fprintf(stderr, "%s.%03ldZ singleton-lock[%d]: %s\n", stamp,
                 static_cast<long>(tv.tv_usec / 1000), static_cast<int>(getpid()), line.c_str());
    std::fflush(stderr);
}

}  // namespace singleton_lock::cli
