// singleton-lock's log on stderr never blocks its run loop: with a reader that
// stopped reading, lines wait in a bounded backlog and are written in order
// once it reads again; beyond the backlog they are counted and the count is
// said. (A blocked log line once froze the loop that renews the lease.)
#include "log.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
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
                                " log lines dropped: stderr did not take them)"),
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


// Runs body in a child process, as the log's state is the process's own (a
// stderr given up stays given up), and returns its wait status. A body that
// hangs or spins is ended by SIGALRM.
int status_of_child(const std::function<int()>& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::alarm(10);
        ::_exit(body());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
}

// What a pipe holds now (its writers closed).
std::string drained(int read_end) {
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = ::read(read_end, buf, sizeof buf)) > 0;) got.append(buf, n);
    return got;
}

enum ChildResult { kOk = 0, kNoPipe = 10, kWrongOutput = 11 };

// stderr on a full disk (ENOSPC): lines are lost and counted, the count is said
// once stderr takes lines again, and drain_log gives up at once. Before: at exit
// drain_log pushed the note, lost it, counted it and pushed it again for ever
// (a released leader spun at 100% CPU and never exited).
TEST(Log, AFullDiskNeitherBlocksNorSpinsAndItsLostLinesAreCounted) {
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    const int status = status_of_child([&] {
        const int full = ::open("/dev/full", O_WRONLY);
        if (full < 0 || ::dup2(full, STDERR_FILENO) < 0) return int{kNoPipe};
        for (int i = 0; i < 3; ++i) log("lost " + std::to_string(i));
        drain_log(std::chrono::seconds(1));  // the note is lost too: once
        ::dup2(p[1], STDERR_FILENO);
        log("after the disk has room");
        drain_log(std::chrono::seconds(1));
        return int{kOk};
    });
    ::close(p[1]);
    const auto lines = lines_of(drained(p[0]));
    ::close(p[0]);
    ASSERT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status) << " (hung or spun)";
    ASSERT_EQ(WEXITSTATUS(status), kOk);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_NE(lines[0].find("(3 log lines dropped: stderr did not take them)"), std::string::npos)
        << lines[0];
    EXPECT_NE(lines[1].find("after the disk has room"), std::string::npos) << lines[1];
}

// A pipe whose reader is gone (EPIPE, POLLERR) and a closed stderr (POLLNVAL):
// given up for good, without blocking, spinning or dying of SIGPIPE (ignored,
// as singleton-lock run ignores it).
TEST(Log, AStderrNobodyCanReadIsGivenUp) {
    for (const bool closed : {false, true}) {
        const int status = status_of_child([closed] {
            ::signal(SIGPIPE, SIG_IGN);
            int q[2];
            if (::pipe(q) != 0) return int{kNoPipe};
            ::dup2(q[1], STDERR_FILENO);
            ::close(q[0]);  // the reader is gone
            ::close(q[1]);
            if (closed) ::close(STDERR_FILENO);
            for (int i = 0; i < 2000; ++i) log("nobody reads line " + std::to_string(i));
            drain_log(std::chrono::seconds(30));  // (given up: returns at once)
            return int{kOk};
        });
        ASSERT_TRUE(WIFEXITED(status)) << (closed ? "closed: " : "reader gone: ") << "signal "
                                       << WTERMSIG(status);
        EXPECT_EQ(WEXITSTATUS(status), kOk);
    }
}

}  // namespace
}  // namespace singleton_lock::cli
