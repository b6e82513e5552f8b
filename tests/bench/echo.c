/* A small epoll echo server for tests/bench/peers.py (loopback only).
 *
 *   echo [PORT [SECONDS]]   PORT 0 (the default) lets the kernel pick; the port in use is
 *                           printed on stdout as "port N" once listening. The process
 *                           exits by itself after SECONDS (default 300).
 *
 * Level-triggered epoll. A readable connection gets one read (up to 64 KiB) and the bytes
 * go straight back; what the socket does not take is kept for that connection, which then
 * waits for EPOLLOUT instead of EPOLLIN until the kept bytes are gone (so a client that
 * does not read is never answered faster than it reads). One process holds at most its
 * open-files limit of connections: start one per port past that. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define EVENTS 512
#define READ_MAX 65536

typedef struct { char *data; size_t at, len; } held_t;

static held_t *held;      /* per fd: bytes the socket did not take yet */
static int epfd;
static char inbuf[READ_MAX];

static void watch(int op, int fd, unsigned events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(epfd, op, fd, &ev);
}

static void hang_up(int fd) {
    free(held[fd].data);
    held[fd] = (held_t){0};
    close(fd);
}

static void keep(int fd, const char *p, size_t n) {
    held[fd].data = malloc(n);
    memcpy(held[fd].data, p, n);
    held[fd].at = 0;
    held[fd].len = n;
    watch(EPOLL_CTL_MOD, fd, EPOLLOUT);
}

static void writable(int fd) {
    held_t *h = &held[fd];
    ssize_t w = write(fd, h->data + h->at, h->len - h->at);
    if (w < 0) {
        if (errno != EAGAIN) hang_up(fd);
        return;
    }
    h->at += (size_t)w;
    if (h->at == h->len) {
        free(h->data);
        *h = (held_t){0};
        watch(EPOLL_CTL_MOD, fd, EPOLLIN);
    }
}

static void readable(int fd) {
    ssize_t r = read(fd, inbuf, sizeof inbuf);
    if (r == 0 || (r < 0 && errno != EAGAIN)) {
        hang_up(fd);
        return;
    }
    if (r < 0) return;
    ssize_t w = write(fd, inbuf, (size_t)r);
    if (w < 0 && errno != EAGAIN) {
        hang_up(fd);
        return;
    }
    if (w < 0) w = 0;
    if (w < r) keep(fd, inbuf + w, (size_t)(r - w));
}

static void accept_all(int lfd, rlim_t limit) {
    int one = 1, c;
    while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        if ((rlim_t)c >= limit) { close(c); continue; }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        watch(EPOLL_CTL_ADD, c, EPOLLIN);
    }
}

static int listen_on(int port) {
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 65535) ||
        getsockname(lfd, (struct sockaddr *)&a, &len)) {
        perror("echo: bind/listen");
        exit(1);
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    return lfd;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    alarm(argc > 2 ? (unsigned)atoi(argv[2]) : 300);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    held = calloc(rl.rlim_cur, sizeof *held);
    epfd = epoll_create1(0);
    int lfd = listen_on(port);
    watch(EPOLL_CTL_ADD, lfd, EPOLLIN);
    struct epoll_event evs[EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, evs, EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) accept_all(lfd, rl.rlim_cur);
            else if (held[fd].data) writable(fd);
            else readable(fd);
        }
    }
}
