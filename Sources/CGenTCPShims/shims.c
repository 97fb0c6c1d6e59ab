#define _GNU_SOURCE
#include "CGenTCPShims.h"

int cgentcp_cond_init_monotonic(pthread_cond_t *cond) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
#ifdef __linux__
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
#endif
    int rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

int cgentcp_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, unsigned long long deadline_ns) {
    if (deadline_ns == 0) return pthread_cond_wait(cond, mutex);
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ns / 1000000000ull);
    ts.tv_nsec = (long)(deadline_ns % 1000000000ull);
    return pthread_cond_timedwait(cond, mutex, &ts);
}

int cgentcp_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    return accept4(fd, address, length, flags);
}

#include <poll.h>
#include <signal.h>

int cgentcp_wait_readable(int fd, unsigned long long nanoseconds) {
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0 };
    struct timespec ts = { .tv_sec = (time_t)(nanoseconds / 1000000000ull), .tv_nsec = (long)(nanoseconds % 1000000000ull) };
    int rc = ppoll(&p, 1, &ts, NULL);
    if (rc < 0) return -1;
    return rc > 0 ? 1 : 0;
}

#include <sched.h>
#include <errno.h>

/* Polls fd for readability for up to spin_ns, yielding the CPU between polls. A yield that gave
   the CPU away (it took over 10 us: another thread was runnable here) ends the spin early: on a
   busy CPU spinning only delays the others, and the thread is better off asleep. */
int cgentcp_spin_readable(int fd, unsigned long long spin_ns, unsigned long long *spent_ns) {
    unsigned long long start = cgentcp_monotonic_ns(), spent = 0;
    int result = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0 };
    while (spin_ns > 0) {
        int rc = poll(&p, 1, 0);
        if (rc > 0) { result = 1; break; }
        if (rc < 0 && errno != EINTR) { result = -1; break; }
        unsigned long long before = cgentcp_monotonic_ns();
        spent = before - start;
        if (spent >= spin_ns) break;
        sched_yield();
        if (cgentcp_monotonic_ns() - before > 10000ull) {
            spent = cgentcp_monotonic_ns() - start;
            break;
        }
    }
    if (spent_ns) *spent_ns = spent;
    return result;
}

/* The spin above, then a sleep in ppoll for the rest of nanoseconds. 2 when the spin found fd
   readable, 1 when the sleep did, 0 when the time ran out, -1 on error. */
int cgentcp_wait_readable_spinning(int fd, unsigned long long spin_ns, unsigned long long nanoseconds) {
    if (spin_ns > nanoseconds) spin_ns = nanoseconds;
    if (spin_ns > 0) {
        unsigned long long spent = 0;
        int rc = cgentcp_spin_readable(fd, spin_ns, &spent);
        if (rc != 0) return rc > 0 ? 2 : -1;
        nanoseconds -= spent < nanoseconds ? spent : nanoseconds;
        if (nanoseconds == 0) return 0;
    }
    return cgentcp_wait_readable(fd, nanoseconds);
}

#ifdef __GLIBC__
#include <malloc.h>
#endif

void cgentcp_set_trim_threshold(int bytes) {
#ifdef __GLIBC__
    mallopt(M_TRIM_THRESHOLD, bytes);
#else
    (void)bytes;
#endif
}

#include <string.h>
#include <linux/sock_diag.h>

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

int cgentcp_enable_drop_count(int fd) {
    int on = 1;
    return setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on);
}

long long cgentcp_socket_drops(int fd) {
    unsigned int info[SK_MEMINFO_VARS];
    socklen_t length = sizeof info;
    memset(info, 0, sizeof info);
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, info, &length) != 0) return -1;
    if (length < (SK_MEMINFO_DROPS + 1) * sizeof(unsigned int)) return -1;
    return (long long)info[SK_MEMINFO_DROPS];
}

/// Room for one SO_RXQ_OVFL control message (a uint32), aligned as the kernel writes it.
union drop_control {
    char bytes[CMSG_SPACE(sizeof(unsigned int))];
    struct cmsghdr align;
};

static void read_drops(struct msghdr *message, unsigned int *drops) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(message); c != NULL; c = CMSG_NXTHDR(message, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(unsigned int))) {
            unsigned int value;
            memcpy(&value, CMSG_DATA(c), sizeof value);
            if (value > *drops) *drops = value;
        }
    }
}

long cgentcp_recv_datagram(int fd, void *buffer, unsigned long capacity,
                           struct sockaddr_storage *source, unsigned int *drops) {
    struct iovec iov = { .iov_base = buffer, .iov_len = capacity };
    union drop_control control;
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_name = source;
    message.msg_namelen = sizeof *source;
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof control.bytes;
    ssize_t n = recvmsg(fd, &message, MSG_TRUNC | MSG_DONTWAIT);
    if (n >= 0) read_drops(&message, drops);
    return (long)n;
}

#define CGENTCP_BATCH 64

int cgentcp_recv_datagrams(int fd, unsigned int count, unsigned char *buffers, unsigned long capacity,
                           struct sockaddr_storage *sources, unsigned long *lengths, unsigned int *drops) {
    if (count > CGENTCP_BATCH) count = CGENTCP_BATCH;
    struct mmsghdr messages[CGENTCP_BATCH];
    struct iovec iovs[CGENTCP_BATCH];
    union drop_control controls[CGENTCP_BATCH];
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        iovs[i].iov_base = buffers + (size_t)i * capacity;
        iovs[i].iov_len = capacity;
        messages[i].msg_hdr.msg_name = &sources[i];
        messages[i].msg_hdr.msg_namelen = sizeof sources[i];
        messages[i].msg_hdr.msg_iov = &iovs[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_control = controls[i].bytes;
        messages[i].msg_hdr.msg_controllen = sizeof controls[i].bytes;
    }
    int n = recvmmsg(fd, messages, count, MSG_TRUNC | MSG_DONTWAIT, NULL);
    for (int i = 0; i < n; i++) {
        lengths[i] = messages[i].msg_len;
        read_drops(&messages[i].msg_hdr, drops);
    }
    return n;
}

long cgentcp_send_datagram(int fd, const struct iovec *iov, int iovcnt,
                           const struct sockaddr *destination, socklen_t destination_length) {
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_name = (void *)destination;
    message.msg_namelen = destination == NULL ? 0 : destination_length;
    message.msg_iov = (struct iovec *)iov;
    message.msg_iovlen = (size_t)iovcnt;
    return (long)sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int cgentcp_send_datagrams(int fd, unsigned int count, const struct iovec *datagrams,
                           const struct sockaddr_storage *destinations, const socklen_t *destination_lengths) {
    if (count > CGENTCP_BATCH) count = CGENTCP_BATCH;
    struct mmsghdr messages[CGENTCP_BATCH];
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        messages[i].msg_hdr.msg_name = destination_lengths[i] == 0 ? NULL : (void *)&destinations[i];
        messages[i].msg_hdr.msg_namelen = destination_lengths[i];
        messages[i].msg_hdr.msg_iov = (struct iovec *)&datagrams[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    return sendmmsg(fd, messages, count, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int cgentcp_wait_writable(int fd, unsigned long long nanoseconds) {
    struct pollfd p = { .fd = fd, .events = POLLOUT, .revents = 0 };
    struct timespec ts = { .tv_sec = (time_t)(nanoseconds / 1000000000ull), .tv_nsec = (long)(nanoseconds % 1000000000ull) };
    int rc = ppoll(&p, 1, &ts, NULL);
    if (rc < 0) return -1;
    return (rc > 0 && (p.revents & POLLOUT)) ? 1 : 0;
}

/* Pins the calling thread to one CPU (tests that need two threads to share a CPU); -1: the lowest
   CPU the thread may run on. The CPU pinned to, or -1 on failure. */
int cgentcp_pin_thread(int cpu) {
#ifdef __linux__
    cpu_set_t set;
    if (cpu < 0) {
        if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) != 0) return -1;
        for (int i = 0; i < CPU_SETSIZE && cpu < 0; i++) if (CPU_ISSET(i, &set)) cpu = i;
        if (cpu < 0) return -1;
    }
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0 ? cpu : -1;
#else
    (void)cpu;
    return -1;
#endif
}
