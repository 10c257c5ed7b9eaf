#include "log.hpp"

#include <poll.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>

namespace singleton_lock::cli {

namespace {

// Up to PIPE_BUF bytes go into a pipe whole or not at all: a longer line is cut.
constexpr std::size_t kLongestLine = PIPE_BUF - 96;
constexpr std::size_t kBacklogBytes = 64 * 1024;

struct Line {
    std::string text;
    unsigned long notes_dropped = 0;  // a note "(N log lines dropped...)": N
};

struct Backlog {
    std::deque<Line> lines;  // the front one may be partly written
    std::size_t bytes = 0;
    unsigned long dropped = 0;  // lines lost: the backlog was full, or their write failed
    bool reader_gone = false;   // EPIPE, EBADF: nothing will ever be read
};
Backlog backlog;

void forget_all() {
    backlog = Backlog{};  // nothing will ever read it
    backlog.reader_gone = true;
}

// Whether stderr takes a line now (within timeout_ms). A pipe nobody can read
// any more (POLLERR), a closed descriptor, a hung-up terminal: never again.
bool writable(int timeout_ms) {
    pollfd p{STDERR_FILENO, POLLOUT, 0};
    const int r = ::poll(&p, 1, timeout_ms);
    if (r <= 0) return false;  // not now (or EINTR: next time)
    if ((p.revents & (POLLERR | POLLNVAL)) != 0 || (p.revents & POLLOUT) == 0) {
        forget_all();
        return false;
    }
    return true;
}

// Writes the backlog's lines while stderr takes them without blocking.
void write_backlog(int timeout_ms) {
    while (!backlog.lines.empty() && writable(timeout_ms)) {
        std::string& line = backlog.lines.front().text;
        const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n < 0 && (errno == EPIPE || errno == EBADF || errno == EINVAL)) return forget_all();
        if (n < 0) {  // (ENOSPC, EIO, ...): this line is lost, perhaps not the next
            const unsigned long lost = std::max(backlog.lines.front().notes_dropped, 1UL);
            backlog.bytes -= line.size();
            backlog.lines.pop_front();
            backlog.dropped += lost;  // (a lost note: the lines it counted, not itself)
            continue;
        }
        backlog.bytes -= static_cast<std::size_t>(n);
        if (static_cast<std::size_t>(n) < line.size()) {
            line.erase(0, static_cast<std::size_t>(n));  // (a socket may take part of it)
            continue;
        }
        backlog.lines.pop_front();
    }
}

std::string dropped_note(const std::string& head, unsigned long n) {
    return head + "(" + std::to_string(n) + " log line" + (n == 1 ? "" : "s") +
           " dropped: stderr did not take them)\n";
}

void push(std::string text, unsigned long notes_dropped = 0) {
    backlog.bytes += text.size();
    backlog.lines.push_back(Line{std::move(text), notes_dropped});
}

// The line, after a note of the lines dropped before it: both, or neither
// (then it is one more dropped).
void enqueue(const std::string& head, std::string line) {
    if (backlog.reader_gone) return;
    const std::string note = backlog.dropped > 0 ? dropped_note(head, backlog.dropped) : "";
    if (backlog.bytes + note.size() + line.size() > kBacklogBytes) {
        ++backlog.dropped;
        return;
    }
    if (!note.empty()) push(note, backlog.dropped);
    backlog.dropped = 0;
    push(std::move(line));
}

std::string flattened(const std::string& message) {
    // One line per event: libpq messages span several lines.
    std::string line;
    line.reserve(message.size());
    for (char c : message) {
        if (c == '\n' || c == '\t' || c == '\r') c = ' ';
        if (c == ' ' && !line.empty() && line.back() == ' ') continue;
        line += c;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (line.size() > kLongestLine) line.resize(kLongestLine);
    return line;
}

std::string prefix() {
    timeval tv{};
    gettimeofday(&tv, nullptr);
    tm utc{};
    gmtime_r(&tv.tv_sec, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    char head[96];
    std::snprintf(head, sizeof head, "%s.%03ldZ singleton-lock[%d]: ", stamp,
                  static_cast<long>(tv.tv_usec / 1000), static_cast<int>(getpid()));
    return head;
}

}  // namespace

void log(const std::string& message) {
    const std::string head = prefix();
    write_backlog(0);
    enqueue(head, head + flattened(message) + "\n");
    write_backlog(0);
}

void flush_log() { write_backlog(0); }  // (nothing waiting: no system call)

void drain_log(std::chrono::milliseconds max_wait) {
    const auto until = std::chrono::steady_clock::now() + max_wait;
    // The count of dropped lines is said once: on a full disk (ENOSPC) the
    // note itself is dropped, and saying it again would never end.
    bool noted = false;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        const std::size_t before = backlog.bytes;
        write_backlog(static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
        if (!backlog.lines.empty() && left.count() <= 0) return;
        if (!backlog.lines.empty()) {
            if (backlog.bytes == before) ::poll(nullptr, 0, 10);  // (EAGAIN: no spinning)
            continue;
        }
        if (backlog.dropped == 0 || backlog.reader_gone || noted) return;
        push(dropped_note(prefix(), backlog.dropped), backlog.dropped);  // (it fits: empty)
        backlog.dropped = 0;
        noted = true;
    }
}

}  // namespace singleton_lock::cli
