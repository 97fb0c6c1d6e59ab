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
/// The brief wait of the posix driver: polls `fd` (no timeout, `sched_yield` between polls) for
/// up to `spin_ns`, ending early when a yield handed the CPU to another thread, then sleeps in
/// ppoll for the rest of `nanoseconds`. 2 when the spin found `fd` readable, 1 when the sleep
/// did, 0 when the time ran out, -1 on error.
int cgentcp_wait_readable_spinning(int fd, unsigned long long spin_ns, unsigned long long nanoseconds);
/// The spin alone: polls `fd` (no timeout, `sched_yield` between polls) for up to `spin_ns`,
/// ending early when a yield handed the CPU to another thread (it took over 10 µs). 1 when `fd`
/// became readable, 0 when the spin ended without, -1 on error; `spent_ns` (may be NULL) gets
/// the time spun when it ended without.
int cgentcp_spin_readable(int fd, unsigned long long spin_ns, unsigned long long *spent_ns);
/// Pins the calling thread to CPU `cpu` (-1: the lowest it may run on); returns that CPU, or -1.
/// For tests that need two threads on one CPU.
int cgentcp_pin_thread(int cpu);

/// Raises glibc's heap trim threshold (mallopt M_TRIM_THRESHOLD); no-op elsewhere.
void cgentcp_set_trim_threshold(int bytes);

// MARK: Datagrams (recvmsg/recvmmsg/sendmmsg need _GNU_SOURCE and CMSG_* macros)

/// Turns on SO_RXQ_OVFL (the kernel's drop count rides on received datagrams): 0 or -1.
int cgentcp_enable_drop_count(int fd);

/// The kernel's cumulative count of datagrams dropped for `fd` (SO_MEMINFO's drops), or -1.
long long cgentcp_socket_drops(int fd);

/// One recvmsg(2) with MSG_TRUNC: the datagram's full length (its first `capacity` bytes are in
/// `buffer`), or -1 with errno. `source` gets the sender; `drops` the SO_RXQ_OVFL count when
/// the datagram carries one (left alone otherwise).
long cgentcp_recv_datagram(int fd, void *buffer, unsigned long capacity,
                           struct sockaddr_storage *source, unsigned int *drops);

/// recvmmsg(2) with MSG_TRUNC | MSG_DONTWAIT of up to `count` datagrams, the i-th into
/// `buffers + i * capacity`: how many came (full lengths in `lengths`, senders in `sources`),
/// or -1 with errno. `drops` as in cgentcp_recv_datagram (the largest count seen).
int cgentcp_recv_datagrams(int fd, unsigned int count, unsigned char *buffers, unsigned long capacity,
                           struct sockaddr_storage *sources, unsigned long *lengths, unsigned int *drops);

/// One sendmsg(2) of a datagram gathered from `iov`, to `destination` (NULL: the connected
/// peer), with MSG_NOSIGNAL: the byte count or -1 with errno.
long cgentcp_send_datagram(int fd, const struct iovec *iov, int iovcnt,
                           const struct sockaddr *destination, socklen_t destination_length);

/// sendmmsg(2) of `count` datagrams, the i-th being `datagrams[i]` to `destinations[i]`
/// (`destination_lengths[i]` 0: the connected peer): how many went, or -1 with errno.
int cgentcp_send_datagrams(int fd, unsigned int count, const struct iovec *datagrams,
                           const struct sockaddr_storage *destinations, const socklen_t *destination_lengths);

/// Blocks up to `nanoseconds` until `fd` is writable: 1 when it is, 0 when not, -1 on error.
int cgentcp_wait_writable(int fd, unsigned long long nanoseconds);

