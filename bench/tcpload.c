/* tcpload.c — the traffic benchmark's TCP workloads, built with gcc at bench time.
 *
 *     tcpload serve PORT                   echo on PORT, discard on PORT+1 (a child per connection)
 *     tcpload rr ADDR PORT SIZE SECONDS    one connection, TCP_NODELAY, SIZE-byte request then
 *                                          SIZE-byte response, as many as fit in SECONDS
 *     tcpload bulk ADDR PORT SECONDS       one connection to PORT+1 writing 256 KiB chunks
 *
 * Clients print one line: "transactions=N seconds=S" or "bytes=N seconds=S".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int listener(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 64) < 0) {
        perror("listen");
        exit(1);
    }
    return s;
}

static void serve_conn(int c, int echo)
{
    static char buf[1 << 18];
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (;;) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (echo) {
            ssize_t off = 0;
            while (off < n) {
                ssize_t w = write(c, buf + off, n - off);
                if (w <= 0)
                    return;
                off += w;
            }
        }
    }
}

static int serve(int port)
{
    struct pollfd p[2] = {{listener(port), POLLIN, 0}, {listener(port + 1), POLLIN, 0}};
    signal(SIGCHLD, SIG_IGN);   /* children reaped by the kernel */
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            int c = accept(p[i].fd, 0, 0);
            if (c < 0)
                continue;
            if (fork() == 0) {
                close(p[0].fd);
                close(p[1].fd);
                serve_conn(c, i == 0);
                _exit(0);
            }
            close(c);
        }
    }
}

static int connect_to(const char *addr, int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        exit(1);
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return s;
}

static int rr(const char *addr, int port, int size, double seconds)
{
    char buf[65536];
    int s = connect_to(addr, port);
    long n = 0;
    memset(buf, 'x', sizeof(buf));
    double t0 = now(), end = t0 + seconds, t = t0;
    while (t < end) {
        for (int i = 0; i < 64; i++) {
            if (write(s, buf, size) != size)
                return 1;
            int got = 0;
            while (got < size) {
                ssize_t r = read(s, buf, size - got);
                if (r <= 0)
                    return 1;
                got += r;
            }
            n++;
        }
        t = now();
    }
    printf("transactions=%ld seconds=%.6f\n", n, t - t0);
    close(s);
    return 0;
}

static int bulk(const char *addr, int port, double seconds)
{
    static char buf[1 << 18];
    int s = connect_to(addr, port + 1);
    long long bytes = 0;
    double t0 = now(), end = t0 + seconds, t = t0;
    while (t < end) {
        ssize_t w = write(s, buf, sizeof(buf));
        if (w <= 0)
            return 1;
        bytes += w;
        t = now();
    }
    printf("bytes=%lld seconds=%.6f\n", bytes, t - t0);
    close(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "serve"))
        return serve(atoi(argv[2]));
    if (argc >= 6 && !strcmp(argv[1], "rr"))
        return rr(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    if (argc >= 5 && !strcmp(argv[1], "bulk"))
        return bulk(argv[2], atoi(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: tcpload serve PORT | rr ADDR PORT SIZE SECONDS | bulk ADDR PORT SECONDS\n");
    return 2;
}
