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
