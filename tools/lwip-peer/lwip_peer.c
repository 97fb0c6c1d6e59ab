/*
 * lwip-peer: lwIP as an embedded board on a SLIP line, for GenTCP's tests.
 *
 *   lwip-peer [--mtu N] [--address A] [--peer A] [--source FILE] [--source-size N]
 *             [--ready FILE] [--verbose] LINE
 *
 * LINE is a tty or pty path (opened raw, 8N1) or "-" for stdin/stdout. The program runs lwIP
 * (the Debian build: an OS port with a tcpip thread and core locking) with one network
 * interface of its own that frames IPv4 datagrams with SLIP (RFC 1055) on LINE: address A
 * (10.0.0.2), point-to-point to the peer (10.0.0.1), MTU N (1006). lwIP answers pings itself;
 * the services, written on lwIP's raw (callback) API as firmware would be, are those of
 * tools/slip-tun/services.py plus one that pings back:
 *
 *   7   echo: every byte comes back; closes once the client half-closed and all was echoed.
 *   9   digest sink: reads until the client half-closes, answers with the SHA-256 (32 bytes)
 *       of what it got, closes.
 *   19  source: sends FILE (or --source-size bytes of a fixed pattern), then closes.
 *   11  pinger: sends 3 ICMP echo requests to the peer, 56 data bytes each, 200 ms apart,
 *       and answers "sent 3 received R\n" (R counts the matching replies within 2 s of the
 *       last request), then closes.
 *
 * and one UDP service:
 *
 *   7   UDP echo: each datagram goes back to its sender, unchanged, as one datagram.
 *
 * A datagram to any other UDP port is answered by lwIP itself with ICMP port unreachable
 * (udp_input's "no matching pcb" path; LWIP_ICMP is 1 in the Debian build).
 *
 * Creates --ready FILE (and prints "lwip-peer: ready ..." on stderr) once all five listen.
 * Exits with status 0 on SIGTERM, SIGINT or when LINE hangs up (end of file).
 *
 * Threads: the main thread reads LINE, decodes frames and hands them to lwIP with
 * tcpip_input() (a message to the tcpip thread, no lock needed). Everything else (services,
 * timers, netif output) runs in lwIP's tcpip thread, which holds the core lock while it calls
 * us; set-up from the main thread takes the lock (LOCK_TCPIP_CORE) as the Debian build asserts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "lwip/inet_chksum.h"
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/prot/icmp.h"
#include "lwip/raw.h"
#include "lwip/sys.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"

#include "sha256.h"

#define SLIP_END 0xC0
#define SLIP_ESC 0xDB
#define SLIP_ESC_END 0xDC
#define SLIP_ESC_ESC 0xDD

/* ---- configuration and line ------------------------------------------------------------- */

static int line_in = -1, line_out = -1;
static int mtu = 1006;
static int verbose = 0;
static ip4_addr_t local_address, peer_address;
static uint8_t *source_data;
static size_t source_size = 1 << 20;

/* Counters: the main thread owns the rx ones, the tcpip thread the tx ones and the UDP ones. */
static unsigned long frames_in, frames_dropped, frames_out;
static unsigned long udp_echoed, udp_echo_failed;

static struct netif slip_netif;

static void note(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("lwip-peer: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
}

/* Writes everything, waiting (poll) while the line is full. Returns 0, or -1 when it failed. */
static int write_all(int fd, const uint8_t *bytes, size_t count) {
    while (count > 0) {
        ssize_t n = write(fd, bytes, count);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                poll(&p, 1, 100);
                continue;
            }
            return -1;
        }
        bytes += n;
        count -= (size_t)n;
    }
    return 0;
}

/* ---- the SLIP netif ------------------------------------------------------------------ */

/* netif->output: lwIP hands us an IPv4 datagram (a pbuf chain) for the peer. Called in the
 * tcpip thread with the core locked, so one frame buffer serves every call. The datagram goes
 * out as END, escaped bytes, END (the leading END flushes line noise, RFC 1055). */
static err_t slip_output(struct netif *netif, struct pbuf *p, const ip4_addr_t *next_hop) {
    (void)netif;
    (void)next_hop;
    static uint8_t *frame;
    if (frame == NULL) frame = malloc(2 * (size_t)mtu + 2);
    if (frame == NULL || p->tot_len > mtu) return ERR_MEM;
    size_t n = 0;
    frame[n++] = SLIP_END;
    for (const struct pbuf *q = p; q != NULL; q = q->next) {
        const uint8_t *bytes = q->payload;
        for (u16_t i = 0; i < q->len; i++) {
            if (bytes[i] == SLIP_END) {
                frame[n++] = SLIP_ESC;
                frame[n++] = SLIP_ESC_END;
            } else if (bytes[i] == SLIP_ESC) {
                frame[n++] = SLIP_ESC;
                frame[n++] = SLIP_ESC_ESC;
            } else {
                frame[n++] = bytes[i];
            }
        }
    }
    frame[n++] = SLIP_END;
    if (write_all(line_out, frame, n) != 0) return ERR_IF;
    frames_out++;
    return ERR_OK;
}

static err_t slip_netif_init(struct netif *netif) {
    netif->name[0] = 's';
    netif->name[1] = 'l';
    netif->output = slip_output;
    netif->mtu = (u16_t)mtu;
    /* A point-to-point line: no ARP, no broadcast, no link header. */
    netif->flags = NETIF_FLAG_LINK_UP;
    return ERR_OK;
}

/* Hands one decoded frame to lwIP (main thread). Only IPv4 datagrams go in. */
static void deliver(const uint8_t *frame, size_t length) {
    if (length < 20 || (frame[0] >> 4) != 4) {
        frames_dropped++;
        return;
    }
    struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)length, PBUF_RAM);
    if (p == NULL) {
        frames_dropped++;
        return;
    }
    pbuf_take(p, frame, (u16_t)length);
    if (slip_netif.input(p, &slip_netif) != ERR_OK) {
        pbuf_free(p);
        frames_dropped++;
        return;
    }
    frames_in++;
}

/* The receive side of the line: a byte-at-a-time decoder. A frame longer than the MTU or with
 * an ESC followed by anything but ESC_END/ESC_ESC is dropped whole (it can only be damage). */
static struct {
    uint8_t *frame;
    size_t length;
    int escaped;
    int discarding;
} rx;

static void decode(const uint8_t *bytes, size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint8_t b = bytes[i];
        if (b == SLIP_END) {
            if (rx.discarding) frames_dropped++;
            else if (rx.escaped) frames_dropped++;
            else if (rx.length > 0) deliver(rx.frame, rx.length);
            rx.length = 0;
            rx.escaped = 0;
            rx.discarding = 0;
            continue;
        }
        if (rx.discarding) continue;
        if (rx.escaped) {
            rx.escaped = 0;
            if (b == SLIP_ESC_END) b = SLIP_END;
            else if (b == SLIP_ESC_ESC) b = SLIP_ESC;
            else {
                rx.discarding = 1;
                continue;
            }
        } else if (b == SLIP_ESC) {
            rx.escaped = 1;
            continue;
        }
        if (rx.length == (size_t)mtu) {
            rx.discarding = 1;
            continue;
        }
        rx.frame[rx.length++] = b;
    }
}

/* ---- TCP services (raw API, tcpip thread) ------------------------------------------------ */

enum service { PORT_ECHO = 7, PORT_SINK = 9, PORT_PINGER = 11, PORT_SOURCE = 19 };

struct conn {
    enum service service;
    struct tcp_pcb *pcb;
    struct pbuf *pending;   /* echo: received, not yet taken by tcp_write */
    sha256_ctx digest;      /* sink */
    size_t offset;          /* source: bytes handed to tcp_write */
    int peer_closed;        /* a FIN came */
    int closing;            /* we close: waiting for room for the FIN */
};

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err);
static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t length);
static err_t on_poll(void *arg, struct tcp_pcb *pcb);
static void on_error(void *arg, err_t err);

/* Our callbacks on the connection's pcb, or (c == NULL) none: lwIP then acknowledges and drops
 * what still arrives. */
static void attach(struct tcp_pcb *pcb, struct conn *c) {
    tcp_arg(pcb, c);
    tcp_recv(pcb, c ? on_recv : NULL);
    tcp_sent(pcb, c ? on_sent : NULL);
    tcp_err(pcb, c ? on_error : NULL);
    tcp_poll(pcb, c ? on_poll : NULL, c ? 2 : 0);
}

/* Closes (queued data and then a FIN still go out) and frees our state. When the send queue has
 * no room for the FIN (ERR_MEM), the state stays and the sent/poll callbacks try again. Aborts
 * on any other failure and returns ERR_ABRT, which a callback must then return. */
static err_t conn_close(struct conn *c) {
    struct tcp_pcb *pcb = c->pcb;
    c->closing = 1;
    attach(pcb, NULL);
    err_t err = tcp_close(pcb);
    if (err == ERR_MEM) {
        attach(pcb, c);
        return ERR_OK;
    }
    if (c->pending) pbuf_free(c->pending);
    free(c);
    if (err == ERR_OK) return ERR_OK;
    tcp_abort(pcb);
    return ERR_ABRT;
}

/* Echo: moves pending bytes into the send buffer as room allows; the receive window opens
 * (tcp_recved) only for bytes taken, so a client that does not read is held back. */
static err_t echo_flush(struct conn *c) {
    static uint8_t chunk[4096];
    while (c->pending != NULL) {
        if (c->pending->tot_len == 0) {
            pbuf_free(c->pending);
            c->pending = NULL;
            break;
        }
        u16_t room = tcp_sndbuf(c->pcb);
        if (room == 0 || tcp_sndqueuelen(c->pcb) >= TCP_SND_QUEUELEN - 1) break;
        u16_t n = c->pending->tot_len;
        if (n > room) n = room;
        if (n > sizeof chunk) n = sizeof chunk;
        pbuf_copy_partial(c->pending, chunk, n, 0);
        err_t err = tcp_write(c->pcb, chunk, n, TCP_WRITE_FLAG_COPY);
        if (err == ERR_MEM) break;
        if (err != ERR_OK) {
            note("echo: tcp_write failed (%d)", err);
            break;
        }
        tcp_recved(c->pcb, n);
        c->pending = pbuf_free_header(c->pending, n);
    }
    tcp_output(c->pcb);
    if (c->peer_closed && c->pending == NULL) return conn_close(c);
    return ERR_OK;
}

/* Source: queues as much of the data as the send buffer takes (no copy: the data lives as
 * long as the program), and closes once everything is queued (the FIN follows the data). */
static err_t source_more(struct conn *c) {
    while (c->offset < source_size) {
        u16_t room = tcp_sndbuf(c->pcb);
        if (room == 0 || tcp_sndqueuelen(c->pcb) >= TCP_SND_QUEUELEN - 1) break;
        size_t n = source_size - c->offset;
        if (n > room) n = room;
        if (n > 8192) n = 8192;
        u8_t flags = c->offset + n < source_size ? TCP_WRITE_FLAG_MORE : 0;
        err_t err = tcp_write(c->pcb, source_data + c->offset, (u16_t)n, flags);
        if (err == ERR_MEM) break;
        if (err != ERR_OK) {
            note("source: tcp_write failed (%d)", err);
            break;
        }
        c->offset += n;
    }
    tcp_output(c->pcb);
    if (c->offset == source_size) return conn_close(c);
    return ERR_OK;
}

/* ---- UDP echo (raw API, tcpip thread) --------------------------------------------------- */

/* Sends each datagram back to where it came from. udp_sendto puts the UDP and IP headers in
 * the room in front of the payload (where the incoming ones were), so p goes back as it is;
 * it stays ours either way and is freed here. */
static void udp_echo_recv(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *from, u16_t port) {
    (void)arg;
    if (p == NULL) return;
    err_t err = udp_sendto(pcb, p, from, port);
    if (err == ERR_OK) {
        udp_echoed++;
    } else {
        udp_echo_failed++;
        if (verbose) note("udp echo: udp_sendto failed (%d)", err);
    }
    pbuf_free(p);
}

static int udp_echo_start(void) {
    struct udp_pcb *pcb = udp_new();
    if (pcb == NULL) return -1;
    if (udp_bind(pcb, IP4_ADDR_ANY, PORT_ECHO) != ERR_OK) {
        udp_remove(pcb);
        return -1;
    }
    udp_recv(pcb, udp_echo_recv, NULL);
    return 0;
}

/* ---- the pinger: ICMP echo requests to the peer through a raw pcb ----------------------- */

#define PING_COUNT 3
#define PING_DATA 56
static struct raw_pcb *icmp_pcb;
static struct conn *pinger;     /* the one connection pinging, or NULL */
static u16_t ping_id;
static int pings_sent, pings_received;
static uint8_t pings_seen[PING_COUNT + 1];

static void pinger_finish(void *arg);

static void ping_send(void *arg) {
    (void)arg;
    struct pbuf *p = pbuf_alloc(PBUF_IP, sizeof(struct icmp_echo_hdr) + PING_DATA, PBUF_RAM);
    if (p != NULL) {
        struct icmp_echo_hdr *h = p->payload;
        h->type = ICMP_ECHO;
        h->code = 0;
        h->chksum = 0;
        h->id = lwip_htons(ping_id);
        h->seqno = lwip_htons((u16_t)(pings_sent + 1));
        uint8_t *data = (uint8_t *)(h + 1);
        for (int i = 0; i < PING_DATA; i++) data[i] = (uint8_t)i;
        h->chksum = inet_chksum(h, (u16_t)p->len);
        ip_addr_t to;
        ip_addr_copy_from_ip4(to, peer_address);
        raw_sendto(icmp_pcb, p, &to);
        pbuf_free(p);
    }
    pings_sent++;
    if (pings_sent < PING_COUNT) sys_timeout(200, ping_send, NULL);
    else sys_timeout(2000, pinger_finish, NULL);
}

/* Raw ICMP input: counts our echo replies (and eats them); everything else goes on to lwIP's
 * own ICMP code, which answers the peer's echo requests. */
static u8_t ping_reply_input(void *arg, struct raw_pcb *pcb, struct pbuf *p, const ip_addr_t *from) {
    (void)arg;
    (void)pcb;
    (void)from;
    uint8_t header[20 + 60];
    if (p->tot_len < 20) return 0;
    pbuf_copy_partial(p, header, 1, 0);
    u16_t ihl = (u16_t)((header[0] & 0x0F) * 4);
    struct icmp_echo_hdr echo;
    if (ihl < 20 || p->tot_len < ihl + sizeof echo) return 0;
    pbuf_copy_partial(p, &echo, sizeof echo, ihl);
    if (echo.type != ICMP_ER || lwip_ntohs(echo.id) != ping_id) return 0;
    u16_t seq = lwip_ntohs(echo.seqno);
    uint8_t data[PING_DATA];
    int intact = p->tot_len == ihl + sizeof echo + PING_DATA &&
                 pbuf_copy_partial(p, data, PING_DATA, (u16_t)(ihl + sizeof echo)) == PING_DATA;
    for (int i = 0; intact && i < PING_DATA; i++) intact = data[i] == (uint8_t)i;
    if (pinger != NULL && intact && seq >= 1 && seq <= PING_COUNT && !pings_seen[seq]) {
        pings_seen[seq] = 1;
        pings_received++;
        if (verbose) note("ping reply seq %u", seq);
        if (pings_received == PING_COUNT && pings_sent == PING_COUNT) {
            sys_untimeout(pinger_finish, NULL);
            pinger_finish(NULL);
        }
    }
    pbuf_free(p);
    return 1;
}

static err_t pinger_start(struct conn *c) {
    if (pinger != NULL) {
        const char busy[] = "busy\n";
        tcp_write(c->pcb, busy, sizeof busy - 1, TCP_WRITE_FLAG_COPY);
        tcp_output(c->pcb);
        return conn_close(c);
    }
    pinger = c;
    ping_id++;
    pings_sent = 0;
    pings_received = 0;
    memset(pings_seen, 0, sizeof pings_seen);
    ping_send(NULL);
    return ERR_OK;
}

static void pinger_finish(void *arg) {
    (void)arg;
    struct conn *c = pinger;
    if (c == NULL) return;
    pinger = NULL;
    char report[64];
    int n = snprintf(report, sizeof report, "sent %d received %d\n", pings_sent, pings_received);
    tcp_write(c->pcb, report, (u16_t)n, TCP_WRITE_FLAG_COPY);
    tcp_output(c->pcb);
    (void)conn_close(c);
}

/* Stops a pinger whose connection went away. */
static void pinger_forget(struct conn *c) {
    if (pinger != c) return;
    pinger = NULL;
    sys_untimeout(ping_send, NULL);
    sys_untimeout(pinger_finish, NULL);
}

/* ---- callbacks ----------------------------------------------------------------------- */

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    struct conn *c = arg;
    if (c == NULL || c->closing) {
        /* Closing: take and drop. */
        if (p != NULL) {
            tcp_recved(pcb, p->tot_len);
            pbuf_free(p);
        }
        return ERR_OK;
    }
    if (p == NULL) {
        c->peer_closed = 1;
        switch (c->service) {
        case PORT_ECHO:
            return echo_flush(c);
        case PORT_SINK: {
            uint8_t digest[32];
            sha256_final(&c->digest, digest);
            tcp_write(pcb, digest, sizeof digest, TCP_WRITE_FLAG_COPY);
            tcp_output(pcb);
            return conn_close(c);
        }
        case PORT_PINGER:
            return ERR_OK;  /* closes when the report is written */
        case PORT_SOURCE:
            return ERR_OK;  /* closes when all is queued */
        }
        return ERR_OK;
    }
    if (err != ERR_OK) {
        pbuf_free(p);
        return err;
    }
    switch (c->service) {
    case PORT_ECHO:
        if (c->pending) pbuf_cat(c->pending, p);
        else c->pending = p;
        return echo_flush(c);
    case PORT_SINK:
        for (struct pbuf *q = p; q != NULL; q = q->next) sha256_update(&c->digest, q->payload, q->len);
        tcp_recved(pcb, p->tot_len);
        pbuf_free(p);
        break;
    case PORT_PINGER:
    case PORT_SOURCE:
        tcp_recved(pcb, p->tot_len);
        pbuf_free(p);
        break;
    }
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t length) {
    (void)pcb;
    (void)length;
    struct conn *c = arg;
    if (c == NULL) return ERR_OK;
    if (c->closing) return conn_close(c);
    if (c->service == PORT_ECHO) return echo_flush(c);
    if (c->service == PORT_SOURCE) return source_more(c);
    return ERR_OK;
}

/* Every second: retries what a full queue (ERR_MEM) held back. */
static err_t on_poll(void *arg, struct tcp_pcb *pcb) {
    (void)pcb;
    return on_sent(arg, pcb, 0);
}

/* The pcb is already freed by lwIP (reset, or too many retransmissions). */
static void on_error(void *arg, err_t err) {
    struct conn *c = arg;
    if (c == NULL) return;
    note("port %d: connection failed (%d)", c->service, err);
    pinger_forget(c);
    if (c->pending) pbuf_free(c->pending);
    free(c);
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err) {
    if (err != ERR_OK || pcb == NULL) return ERR_VAL;
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    c->service = (enum service)(intptr_t)arg;
    c->pcb = pcb;
    sha256_init(&c->digest);
    attach(pcb, c);
    if (verbose) {
        note("port %d: accepted, mss %u, peer window %u, our window %u", c->service, tcp_mss(pcb),
             (unsigned)pcb->snd_wnd, (unsigned)pcb->rcv_wnd);
    }
    if (c->service == PORT_SOURCE) return source_more(c);
    if (c->service == PORT_PINGER) return pinger_start(c);
    return ERR_OK;
}

static int listen_on(enum service service) {
    struct tcp_pcb *pcb = tcp_new();
    if (pcb == NULL) return -1;
    if (tcp_bind(pcb, IP4_ADDR_ANY, (u16_t)service) != ERR_OK) return -1;
    struct tcp_pcb *listener = tcp_listen(pcb);
    if (listener == NULL) return -1;
    tcp_arg(listener, (void *)(intptr_t)service);
    tcp_accept(listener, on_accept);
    return 0;
}

/* ---- start-up ------------------------------------------------------------------------ */

static sys_sem_t started;

static void tcpip_started(void *arg) {
    (void)arg;
    sys_sem_signal(&started);
}

static void usage(const char *program) {
    fprintf(stderr,
            "usage: %s [--mtu N] [--address A] [--peer A] [--source FILE] [--source-size N]\n"
            "          [--ready FILE] [--verbose] LINE\n"
            "LINE is a tty/pty path or - for stdin/stdout.\n",
            program);
    exit(2);
}

static void load_source(const char *path) {
    if (path == NULL) {
        /* A fixed pattern: a 32-bit LCG's high bytes. */
        source_data = malloc(source_size ? source_size : 1);
        uint32_t x = 1;
        for (size_t i = 0; i < source_size; i++) {
            x = x * 1103515245u + 12345u;
            source_data[i] = (uint8_t)(x >> 24);
        }
        return;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        perror(path);
        exit(1);
    }
    source_size = (size_t)st.st_size;
    source_data = malloc(source_size ? source_size : 1);
    if (source_size > 0 && fread(source_data, 1, source_size, f) != source_size) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

int main(int argc, char **argv) {
    const char *address = "10.0.0.2", *peer = "10.0.0.1", *source = NULL, *ready = NULL, *line = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--mtu") && more) mtu = atoi(argv[++i]);
        else if (!strcmp(a, "--address") && more) address = argv[++i];
        else if (!strcmp(a, "--peer") && more) peer = argv[++i];
        else if (!strcmp(a, "--source") && more) source = argv[++i];
        else if (!strcmp(a, "--source-size") && more) source_size = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(a, "--ready") && more) ready = argv[++i];
        else if (!strcmp(a, "--verbose")) verbose = 1;
        else if (a[0] == '-' && a[1] != 0) usage(argv[0]);
        else if (line == NULL) line = a;
        else usage(argv[0]);
    }
    if (line == NULL) usage(argv[0]);
    if (mtu < 68 || mtu > 1500) {
        fprintf(stderr, "lwip-peer: --mtu must be 68...1500\n");
        return 2;
    }
    if (!ip4addr_aton(address, &local_address) || !ip4addr_aton(peer, &peer_address)) {
        fprintf(stderr, "lwip-peer: bad address\n");
        return 2;
    }
    load_source(source);
    rx.frame = malloc((size_t)mtu);

    if (!strcmp(line, "-")) {
        line_in = STDIN_FILENO;
        line_out = STDOUT_FILENO;
    } else {
        line_in = line_out = open(line, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (line_in < 0) {
            perror(line);
            return 1;
        }
        struct termios t;
        if (tcgetattr(line_in, &t) == 0) {
            cfmakeraw(&t);
            t.c_cflag |= CLOCAL | CREAD;
            t.c_cflag &= ~(tcflag_t)(CSTOPB | PARENB);
            tcsetattr(line_in, TCSANOW, &t);
        }
    }

    /* The signals come through a descriptor, so block them before lwIP starts its thread. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
    srand((unsigned)(time(NULL) ^ getpid()));

    if (sys_sem_new(&started, 0) != ERR_OK) return 1;
    tcpip_init(tcpip_started, NULL);
    sys_sem_wait(&started);

    LOCK_TCPIP_CORE();
    ip4_addr_t mask;
    IP4_ADDR(&mask, 255, 255, 255, 255);
    netif_add(&slip_netif, &local_address, &mask, &peer_address, NULL, slip_netif_init, tcpip_input);
    netif_set_default(&slip_netif);
    netif_set_up(&slip_netif);
    netif_set_link_up(&slip_netif);
    icmp_pcb = raw_new(IP_PROTO_ICMP);
    int failed = icmp_pcb == NULL;
    if (!failed) raw_recv(icmp_pcb, ping_reply_input, NULL);
    ping_id = (u16_t)rand();
    enum service services[] = {PORT_ECHO, PORT_SINK, PORT_PINGER, PORT_SOURCE};
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) failed |= listen_on(services[i]) != 0;
    failed |= udp_echo_start() != 0;
    UNLOCK_TCPIP_CORE();
    /* What lwIP advertises and sends at most (TCP_CALCULATE_EFF_SEND_MSS: the netif MTU - 40). */
    int mss = mtu - 40 < TCP_MSS ? mtu - 40 : TCP_MSS;
    if (failed) {
        note("cannot set up the services");
        return 1;
    }

    note("ready on %s: %s, peer %s, mtu %d, mss %d, TCP_WND %d, TCP_SND_BUF %d, source %zu bytes", line,
         address, peer, mtu, mss, TCP_WND, TCP_SND_BUF, source_size);
    if (ready != NULL) {
        FILE *f = fopen(ready, "w");
        if (f != NULL) fclose(f);
    }

    uint8_t chunk[4096];
    struct pollfd polls[2] = {{.fd = line_in, .events = POLLIN}, {.fd = signal_fd, .events = POLLIN}};
    const char *why = "end of file";
    for (;;) {
        int n = poll(polls, 2, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            why = strerror(errno);
            break;
        }
        if (polls[1].revents) {
            struct signalfd_siginfo info;
            if (read(signal_fd, &info, sizeof info) > 0) why = strsignal((int)info.ssi_signo);
            break;
        }
        if (polls[0].revents) {
            ssize_t got = read(line_in, chunk, sizeof chunk);
            if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (got <= 0) {
                if (got < 0) why = errno == EIO ? "hang-up" : strerror(errno);
                break;
            }
            decode(chunk, (size_t)got);
        }
    }
    /* The UDP counters belong to the tcpip thread: read them under its lock. */
    LOCK_TCPIP_CORE();
    unsigned long echoed = udp_echoed, echo_failed = udp_echo_failed;
    UNLOCK_TCPIP_CORE();
    note("exiting (%s): %lu frames in, %lu dropped, %lu out; udp: %lu echoed, %lu failed", why, frames_in,
         frames_dropped, frames_out, echoed, echo_failed);
    return 0;
}
