/* churn.c — the ingest benchmark's workload: TCP connection attempts to a closed port on
 * the loopback of the namespace it runs in, at a paced rate, for a fixed time.
 *
 * Each attempt fires the probed tracepoints of a refused connection (state changes, a
 * reset sent and received, the SYN's drop, the socket's destroy), so the rate of kernel
 * records is a fixed multiple of the attempt rate. Built with gcc at bench time.
 *
 *     churn RATE SECONDS [PORT]     RATE attempts/s (0: as fast as possible)
 *
 * Prints one line: "attempts=N seconds=S refused=R other=O".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: churn RATE SECONDS [PORT]\n");
        return 2;
    }
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    int port = argc > 3 ? atoi(argv[3]) : 9;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long attempts = 0, refused = 0, other = 0;
    double t0 = now(), end = t0 + seconds, t = t0;
    while (t < end) {
        /* pace in small batches: check the clock every 16 attempts, sleep when ahead */
        for (int i = 0; i < 16; i++) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            if (s < 0) {
                other++;
                continue;
            }
            if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == ECONNREFUSED)
                refused++;
            else
                other++;
            close(s);
            attempts++;
        }
        t = now();
        if (rate > 0) {
            double due = t0 + attempts / rate;
            if (due > t) {
                double d = due - t;
                struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
                nanosleep(&ts, 0);
                t = now();
            }
        }
    }
    printf("attempts=%ld seconds=%.6f refused=%ld other=%ld\n", attempts, now() - t0, refused, other);
    return 0;
}
