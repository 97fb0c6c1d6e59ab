#ifndef CGENTCP_SHIMS_H
#define CGENTCP_SHIMS_H
// What Swift's Glibc module leaves out: epoll, eventfd, and a few helpers with macro arguments.
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netdb.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

static inline int cgentcp_errno(void) { return errno; }
static inline void cgentcp_set_errno(int value) { errno = value; }

/// Monotonic time in nanoseconds.
static inline unsigned long long cgentcp_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/// Waits on a condition until an absolute CLOCK_MONOTONIC deadline (0: forever).
int cgentcp_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex, unsigned long long deadline_ns);
/// Initialises a condition variable that measures time on CLOCK_MONOTONIC.
int cgentcp_cond_init_monotonic(pthread_cond_t *cond);

#endif

/// accept4(2), which Swift's Glibc module hides (it needs _GNU_SOURCE).
int cgentcp_accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

/// Blocks up to `nanoseconds` until `fd` is readable (or hung up / in error): 1 when it is,
/// 0 on timeout, -1 on error. ppoll(2), which needs _GNU_SOURCE.
int cgentcp_wait_readable(int fd, unsigned long long nanoseconds);

/// Raises glibc's heap trim threshold (mallopt M_TRIM_THRESHOLD); no-op elsewhere.
void cgentcp_set_trim_threshold(int bytes);
