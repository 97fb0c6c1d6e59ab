/* Host side of the C-only UART echo benchmark: opens a pty (raw), exchanges one byte to be sure
 * the line is up, then writes COUNT pseudo-random bytes while reading them back, checks them
 * byte for byte, and prints "COUNT SECONDS" for the timed part.
 *
 * Usage: ptyecho PTY COUNT [TIMEOUT_SECONDS]     exit 0 on a byte-exact echo, 1 otherwise. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ptyecho PTY COUNT [TIMEOUT_SECONDS]\n");
        return 2;
    }
    size_t count = strtoul(argv[2], NULL, 10);
    double limit = argc > 3 ? atof(argv[3]) : 600;
    int fd = open(argv[1], O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) { perror(argv[1]); return 1; }
    struct termios t;
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(fd, TCSANOW, &t);
    }
    uint8_t *data = malloc(count + 1), *got = malloc(count + 1);
    if (data == NULL || got == NULL) return 1;
    uint32_t x = 0x9E3779B9u ^ (uint32_t)getpid();
    for (size_t i = 0; i < count; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        data[i] = (uint8_t)x;
    }
    /* Warm-up: one byte there and back (QEMU notices a newly opened pty within a second). */
    uint8_t ping = 0x55, pong = 0;
    double deadline = seconds() + 30;
    while (write(fd, &ping, 1) != 1) {
        if (seconds() > deadline) { fprintf(stderr, "ptyecho: cannot write\n"); return 1; }
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, 100);
    }
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 1000) > 0 && read(fd, &pong, 1) == 1) break;
        if (seconds() > deadline) { fprintf(stderr, "ptyecho: no echo of the warm-up byte\n"); return 1; }
    }
    size_t sent = 0, received = 0;
    double start = seconds();
    deadline = start + limit;
    while (received < count) {
        struct pollfd p = {fd, (short)(POLLIN | (sent < count ? POLLOUT : 0)), 0};
        if (poll(&p, 1, 1000) < 0 && errno != EINTR) { perror("poll"); return 1; }
        if (seconds() > deadline) {
            fprintf(stderr, "ptyecho: %zu of %zu bytes back after %.0f s\n", received, count, limit);
            return 1;
        }
        if ((p.revents & POLLOUT) && sent < count) {
            size_t chunk = count - sent < 256 ? count - sent : 256;
            ssize_t n = write(fd, data + sent, chunk);
            if (n > 0) sent += (size_t)n;
        }
        if (p.revents & POLLIN) {
            ssize_t n = read(fd, got + received, count - received);
            if (n > 0) received += (size_t)n;
        }
    }
    double elapsed = seconds() - start;
    if (memcmp(data, got, count) != 0) {
        fprintf(stderr, "ptyecho: the echo differs\n");
        return 1;
    }
    printf("%zu %.3f\n", count, elapsed);
    return 0;
}
