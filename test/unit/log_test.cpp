// singleton-lock's log on stderr never blocks its run loop: with a reader that
// stopped reading, lines wait in a bounded backlog and are written in order
// once it reads again; beyond the backlog they are counted and the count is
// said. (A blocked log line once froze the loop that renews the lease.)
#include "log.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace singleton_lock::cli {
namespace {

// stderr replaced by a pipe that is full, its reader not reading.
struct FullPipeAsStderr {
    int read_end = -1, write_end = -1, saved = -1;
    std::size_t filled = 0;
    FullPipeAsStderr() {
        int p[2];
        if (::pipe(p) != 0) return;
        read_end = p[0];
        write_end = p[1];
        saved = ::dup(STDERR_FILENO);
        ::dup2(write_end, STDERR_FILENO);
        // Filled without blocking, then blocking again: the flag is the pipe's
        // (shared with stderr), and a write that blocked would hang the test.
        ::fcntl(write_end, F_SETFL, O_NONBLOCK);
        const std::string chunk(4096, 'x');
        for (ssize_t n; (n = ::write(write_end, chunk.data(), chunk.size())) > 0;) filled += n;
        ::fcntl(write_end, F_SETFL, 0);
    }
    // Reads all that comes until stderr is restored (the pipe's end).
    std::string read_while(const std::function<void()>& writer) {
        std::string got;
        std::thread reader([&] {
            char buf[65536];
            for (ssize_t n; (n = ::read(read_end, buf, sizeof buf)) > 0;) got.append(buf, n);
        });
        writer();
        ::dup2(saved, STDERR_FILENO);
        ::close(write_end);
        reader.join();
        return got;
    }
    ~FullPipeAsStderr() {
        for (int fd : {read_end, saved})
            if (fd >= 0) ::close(fd);
    }
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

TEST(Log, AStalledReaderNeitherBlocksNorReordersAndDropsAreCounted) {
    FullPipeAsStderr err;
    ASSERT_GE(err.read_end, 0);
    ASSERT_GT(err.filled, 0u);
    constexpr int kLines = 2000;  // about 200 KiB: more than the backlog holds
    ::alarm(30);                  // (a log() that blocked: SIGALRM ends the test)
    for (int i = 0; i < kLines; ++i) log("line " + std::to_string(i) + " " + std::string(60, 'y'));
    ::alarm(0);
    const std::string got = err.read_while([] { drain_log(std::chrono::seconds(10)); });

    ASSERT_GE(got.size(), err.filled);
    EXPECT_EQ(got.substr(0, err.filled), std::string(err.filled, 'x'));
    const auto lines = lines_of(got.substr(err.filled));
    ASSERT_GE(lines.size(), 2u);
    const int kept = static_cast<int>(lines.size()) - 1;
    for (int i = 0; i < kept; ++i)  // the first lines, whole and in order
        ASSERT_NE(lines[i].find("]: line " + std::to_string(i) + " "), std::string::npos)
            << lines[i];
    EXPECT_GT(kept * 100, 48 * 1024) << "the backlog held only " << kept << " lines";
    EXPECT_NE(lines.back().find("(" + std::to_string(kLines - kept) +
                                " log lines dropped: stderr was not read)"),
              std::string::npos)
        << lines.back();
}

TEST(Log, LinesWaitingInTheBacklogGoOutBeforeLaterOnes) {
    FullPipeAsStderr err;
    ASSERT_GE(err.read_end, 0);
    log("first, while stalled");
    const std::string got = err.read_while([] {
        flush_log();  // (whatever the reader has taken by now)
        log("second, once read again");
        drain_log(std::chrono::seconds(10));
    });
    const auto lines = lines_of(got.substr(err.filled));
    ASSERT_EQ(lines.size(), 2u) << got.substr(err.filled);
    EXPECT_NE(lines[0].find("first, while stalled"), std::string::npos);
    EXPECT_NE(lines[1].find("second, once read again"), std::string::npos);
}

}  // namespace
}  // namespace singleton_lock::cli
