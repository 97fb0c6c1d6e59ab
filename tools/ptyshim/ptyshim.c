// ptyshim: a test-only LD_PRELOAD library that lets libserialport open a pty.
//
// libserialport refuses ptys in two places (see docs in Sources/GenTCPSerial/PTYLink.swift and
// /work/shared/reference/swift-platform.md section 1):
//   1. sp_get_port_by_name looks the device up under /sys/class/tty/<name>, which does not exist
//      for /dev/pts/N. We make /sys/class/tty/pts/N look like a symlink (__lxstat) that points
//      at a virtual tty (readlink).
//   2. Every sp_set_* call reads the modem lines with TIOCMGET, which the pty driver rejects with
//      ENOTTY. When the real ioctl fails that way we report CTS|DSR|CD, and accept writes of the
//      modem lines (TIOCMBIS, TIOCMBIC, TIOCMSET) as done.
// Nothing else changes. Build: tools/ptyshim/run-smoke.sh. Never load this in production.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static const char pts_prefix[] = "/sys/class/tty/pts/";

static int is_pts_sysfs(const char *path) {
    return path != NULL && strncmp(path, pts_prefix, sizeof(pts_prefix) - 1) == 0;
}

int ioctl(int fd, unsigned long request, ...) {
    static int (*real_ioctl)(int, unsigned long, ...);
    if (real_ioctl == NULL) real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    va_list args;
    va_start(args, request);
    void *argument = va_arg(args, void *);
    va_end(args);
    int result = real_ioctl(fd, request, argument);
    if (result == -1 && errno == ENOTTY) {
        switch (request) {
        case TIOCMGET:
            if (argument != NULL) *(int *)argument = TIOCM_CTS | TIOCM_DSR | TIOCM_CD;
            errno = 0;
            return 0;
        case TIOCMBIS:
        case TIOCMBIC:
        case TIOCMSET:
            errno = 0;
            return 0;
        default:
            break;
        }
    }
    return result;
}

// libserialport (built against an older glibc) calls __lxstat for lstat.
int __lxstat(int version, const char *path, struct stat *status) {
    static int (*real_lxstat)(int, const char *, struct stat *);
    if (is_pts_sysfs(path)) {
        memset(status, 0, sizeof(*status));
        status->st_mode = S_IFLNK | 0777;
        return 0;
    }
    if (real_lxstat == NULL) real_lxstat = (int (*)(int, const char *, struct stat *))dlsym(RTLD_NEXT, "__lxstat");
    return real_lxstat(version, path, status);
}

ssize_t readlink(const char *path, char *buffer, size_t size) {
    static ssize_t (*real_readlink)(const char *, char *, size_t);
    if (is_pts_sysfs(path)) {
        // libserialport passes the same buffer as path and result: copy the number out first.
        char number[32];
        snprintf(number, sizeof(number), "%s", path + sizeof(pts_prefix) - 1);
        char target[96];
        int length = snprintf(target, sizeof(target), "../../devices/virtual/tty/pts%s", number);
        if (length < 0 || (size_t)length > size) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(buffer, target, (size_t)length);  // readlink does not NUL-terminate
        return length;
    }
    if (real_readlink == NULL) real_readlink = (ssize_t (*)(const char *, char *, size_t))dlsym(RTLD_NEXT, "readlink");
    return real_readlink(path, buffer, size);
}
