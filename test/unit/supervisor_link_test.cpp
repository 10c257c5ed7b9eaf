// The link between singleton-lock and its supervising process (a SOCK_SEQPACKET
// socketpair): what one side sent before closing is never lost to the other.
#include "supervisor_link.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace singleton_lock::cli {
namespace {

struct Pair {
    int wrapper = -1, supervisor = -1;
    Pair() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
            wrapper = sv[0];
            supervisor = sv[1];
        }
    }
    ~Pair() {
        for (int fd : {wrapper, supervisor})
            if (fd >= 0) ::close(fd);
    }
};

// The supervisor reports, then exits while a message of singleton-lock's (a
// watchdog deadline sent meanwhile) is still unread in its queue. Linux then
// marks singleton-lock's end ECONNRESET, and recvmsg reports that error before
// the report queued ahead of it: the report must still be read.
TEST(SupervisorLink, AReportSentBeforeClosingWithUnreadMessagesIsReceived) {
    Pair p;
    ASSERT_GE(p.wrapper, 0);
    ASSERT_TRUE(link::send(p.wrapper, {link::Kind::deadline, 0, 0, 42}));
    ASSERT_TRUE(link::send(p.supervisor, {link::Kind::ended, 0, 2, link::killed_at_grace_end}));
    ::close(p.supervisor);
    p.supervisor = -1;

    link::Message m{};
    ASSERT_EQ(link::receive(p.wrapper, m), 1) << "errno " << errno;
    EXPECT_EQ(m.kind, link::Kind::ended);
    EXPECT_EQ(m.a, 2);
    EXPECT_EQ(m.b, link::killed_at_grace_end);
    EXPECT_EQ(link::receive(p.wrapper, m), 0);  // then EOF
}

// Nothing queued behind the reset: EOF, as for any close.
TEST(SupervisorLink, APeerClosingWithUnreadMessagesAndNothingSentIsEof) {
    Pair p;
    ASSERT_GE(p.wrapper, 0);
    ASSERT_TRUE(link::send(p.wrapper, {link::Kind::stop, 15, 0, 0}));
    ::close(p.supervisor);
    p.supervisor = -1;
    link::Message m{};
    EXPECT_EQ(link::receive(p.wrapper, m), 0) << "errno " << errno;
}

// A live peer with nothing sent: EAGAIN, never a block.
TEST(SupervisorLink, NothingQueuedIsEagain) {
    Pair p;
    ASSERT_GE(p.wrapper, 0);
    link::Message m{};
    EXPECT_EQ(link::receive(p.wrapper, m), -1);
    EXPECT_EQ(errno, EAGAIN);
}

}  // namespace
}  // namespace singleton_lock::cli
