/*
 * slip-tun: copies IPv4 datagrams between a TUN device and a serial line (or pty), framing them
 * with SLIP (RFC 1055) on the line. The test suite of GenTCP's slip driver runs it inside a
 * network namespace so that the Linux kernel's TCP/IP stack is the peer on the other end of the
 * line.
 *
 *   slip-tun TUN-NAME TTY-PATH [MTU]
 *
 * TUN-NAME is attached with IFF_TUN | IFF_NO_PI (create it first with `ip tuntap add`, or let
 * this program create it; either way configure addresses with `ip`). TTY-PATH is opened raw.
 * One datagram at a time each way; frames longer than MTU (default 1006) or with a bad escape
 * are dropped. Exits when the line hangs up or on SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define END 0xC0
#define ESC 0xDB
#define ESC_END 0xDC
#define ESC_ESC 0xDD

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                struct pollfd q = {fd, POLLOUT, 0};
                poll(&q, 1, 100);
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TUN-NAME TTY-PATH [MTU]\n", argv[0]);
        return 2;
    }
    int mtu = argc > 3 ? atoi(argv[3]) : 1006;
    if (mtu < 68 || mtu > 65535) mtu = 1006;

    int tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tun < 0) { perror("open /dev/net/tun"); return 1; }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    if (ioctl(tun, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); return 1; }

    int tty = open(argv[2], O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0) { perror("open tty"); return 1; }
    struct termios t;
    if (tcgetattr(tty, &t) == 0) {
        cfmakeraw(&t);
        t.c_cflag |= CLOCAL | CREAD;
        tcsetattr(tty, TCSANOW, &t);
    }

    unsigned char *packet = malloc((size_t)mtu + 64);
    unsigned char *line = malloc(2 * (size_t)mtu + 130);
    unsigned char *frame = malloc((size_t)mtu);
    unsigned char chunk[4096];
    size_t flen = 0;
    int escaped = 0, discarding = 0;
    fprintf(stderr, "slip-tun: %s <-> %s, mtu %d\n", ifr.ifr_name, argv[2], mtu);

    for (;;) {
        struct pollfd fds[2] = {{tun, POLLIN, 0}, {tty, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            perror("poll");
            return 1;
        }
        if (fds[0].revents & POLLIN) {
            ssize_t n = read(tun, packet, (size_t)mtu + 64);
            if (n > 0 && n <= mtu) {
                size_t k = 0;
                line[k++] = END;
                for (ssize_t i = 0; i < n; i++) {
                    if (packet[i] == END) { line[k++] = ESC; line[k++] = ESC_END; }
                    else if (packet[i] == ESC) { line[k++] = ESC; line[k++] = ESC_ESC; }
                    else line[k++] = packet[i];
                }
                line[k++] = END;
                if (write_all(tty, line, k) < 0) { perror("write tty"); return 1; }
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(tty, chunk, sizeof chunk);
            if (n <= 0) {
                if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
                fprintf(stderr, "slip-tun: line hung up\n");
                return 0;
            }
            for (ssize_t i = 0; i < n; i++) {
                unsigned char b = chunk[i];
                if (b == END) {
                    if (!discarding && !escaped && flen > 0) (void)!write(tun, frame, flen);
                    flen = 0; escaped = 0; discarding = 0;
                    continue;
                }
                if (discarding) continue;
                if (escaped) {
                    escaped = 0;
                    if (b == ESC_END) b = END;
                    else if (b == ESC_ESC) b = ESC;
                    else { discarding = 1; continue; }
                } else if (b == ESC) {
                    escaped = 1;
                    continue;
                }
                if (flen < (size_t)mtu) frame[flen++] = b;
                else discarding = 1;
            }
        }
    }
}
