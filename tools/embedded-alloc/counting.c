// Allocation counters for tools/embedded-alloc/main.swift. The program is linked with
// `-Wl,--wrap=posix_memalign,--wrap=malloc,--wrap=free`: every call the Swift objects (the
// Embedded runtime's swift_slowAlloc/swift_slowDealloc, anything else) make to these functions
// lands here, is counted, and goes on to the C library (__real_*). libc's own internal calls are
// not affected.
#include <stddef.h>

int __real_posix_memalign(void **memptr, size_t alignment, size_t size);
void *__real_malloc(size_t size);
void __real_free(void *ptr);

static long allocations;
static long frees;
static long bytes;

int __wrap_posix_memalign(void **memptr, size_t alignment, size_t size) {
    allocations++;
    bytes += (long)size;
    return __real_posix_memalign(memptr, alignment, size);
}

void *__wrap_malloc(size_t size) {
    allocations++;
    bytes += (long)size;
    return __real_malloc(size);
}

void __wrap_free(void *ptr) {
    if (ptr) frees++;
    __real_free(ptr);
}

long gentcp_allocations(void) { return allocations; }
long gentcp_frees(void) { return frees; }
long gentcp_allocated_bytes(void) { return bytes; }
