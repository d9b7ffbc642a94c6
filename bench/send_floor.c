/*
 * The kernel's floor for fan-out on this machine: CPU time of one non-blocking send() of a
 * 100-byte frame to each of N loopback TCP sockets, 10 rounds a second, from C. Any server,
 * in any language, pays at least this per client per tick; pledge-ws's own cost is compared
 * with it in bench/README.md ("Kernel floor").
 *
 *   gcc -O2 -o bench/.build/send_floor bench/send_floor.c && bench/.build/send_floor 5000
 *
 * The sender is pinned to CPU 0 and a reader process (epoll, draining everything) to CPU 1,
 * as in bench/run.py. Loopback only; it stops by itself after ROUNDS rounds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 30, FRAME = 100 };

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void reader(struct sockaddr_in *addr, int n) {
    pin(1);
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)addr, sizeof *addr) != 0) _exit(1);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    struct epoll_event events[512];
    static char buf[65536];
    double end = seconds(CLOCK_MONOTONIC) + ROUNDS / 10.0 + 5;
    while (seconds(CLOCK_MONOTONIC) < end) {
        int ready = epoll_wait(ep, events, 512, 500);
        for (int i = 0; i < ready; i++) (void)!read(events[i].data.fd, buf, sizeof buf);
    }
    _exit(0);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4096)) return 1;
    getsockname(listener, (struct sockaddr *)&addr, &len);
    pid_t child = fork();
    if (child == 0) reader(&addr, n);
    pin(0);
    int *fds = malloc(n * sizeof *fds);
    for (int i = 0; i < n; i++) {
        fds[i] = accept(listener, NULL, NULL);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
    }
    char frame[FRAME];
    memset(frame, 'x', sizeof frame);
    long sent = 0;
    double cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
    for (int r = 0; r < ROUNDS; r++) {
        double start = seconds(CLOCK_MONOTONIC);
        for (int i = 0; i < n; i++) sent += send(fds[i], frame, sizeof frame, MSG_DONTWAIT) == FRAME;
        double left = 0.1 - (seconds(CLOCK_MONOTONIC) - start);
        if (left > 0) usleep((useconds_t)(left * 1e6));
    }
    double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    printf("{\"clients\": %d, \"sends\": %ld, \"us_cpu_per_send\": %.2f, \"cpu_fraction_at_10_ticks\": %.2f}\n", n,
           sent, cpu / sent * 1e6, cpu / (ROUNDS / 10.0));
    waitpid(child, NULL, 0);
    return 0;
}
