#include "supervisor_link.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace singleton_lock::cli::link {

bool send(int link, const Message& m, const int* fds, int nfds) {
    iovec iov{const_cast<Message*>(&m), sizeof m};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_sockets)] = {};
    if (nfds > 0 && nfds <= max_sockets) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<unsigned>(nfds));
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<unsigned>(nfds));
        std::memcpy(CMSG_DATA(c), fds, sizeof(int) * static_cast<unsigned>(nfds));
    }
    ssize_t n;
    do {
        n = ::sendmsg(link, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(sizeof m);
}

int receive(int link, Message& m, int* fds, int* nfds) {
    iovec iov{&m, sizeof m};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_sockets)] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    // ECONNRESET: the peer closed while messages of ours were unread in its
    // queue. Linux reports that once, before the messages the peer sent first
    // (its last report): read on, they follow, then EOF.
    bool reset_seen = false;
    ssize_t n;
    do {
        n = ::recvmsg(link, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 &&
             (errno == EINTR || (errno == ECONNRESET && !std::exchange(reset_seen, true))));
    if (nfds) *nfds = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const int count = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (fds && nfds && *nfds < max_sockets)
                fds[(*nfds)++] = fd;
            else
                ::close(fd);
        }
    }
    if (n == 0) return 0;
    if (n < 0) return -1;
    if (n != static_cast<ssize_t>(sizeof m)) {
        errno = EPROTO;
        return -1;
    }
    return 1;
}

}  // namespace singleton_lock::cli::link
