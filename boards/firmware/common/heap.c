/* A first-fit heap with coalescing over one region: posix_memalign (any power-of-two alignment),
 * malloc and free, with counters. Blocks are multiples of 8 bytes with an 8-byte header; free
 * blocks form an address-ordered list so neighbours merge on free. */
#include "board.h"
#include <errno.h>
#include <string.h>

#define HEADER 8u
#define MINIMUM 16u
#define USED_TAG 0xA11C0DEDu

typedef struct block {
    uint32_t size;         /* whole block, header included */
    uint32_t tag;          /* USED_TAG when allocated; unused when free */
    struct block *next;    /* free blocks only */
} block;

static block *free_list;
static size_t heap_total, in_use, peak, live, allocations;

void board_heap_init(void *start, void *end) {
    uintptr_t s = ((uintptr_t)start + 7u) & ~(uintptr_t)7u;
    uintptr_t e = (uintptr_t)end & ~(uintptr_t)7u;
    free_list = (block *)s;
    free_list->size = (uint32_t)(e - s);
    free_list->tag = 0;
    free_list->next = NULL;
    heap_total = e - s;
}

static void *allocate(size_t alignment, size_t size) {
    if (alignment < 8) alignment = 8;
    if (size == 0) size = 1;
    if (size > heap_total) return NULL;
    size_t need = (size + HEADER + 7u) & ~(size_t)7u;
    if (need < MINIMUM) need = MINIMUM;
    block **link = &free_list;
    for (block *b = free_list; b != NULL; link = &b->next, b = b->next) {
        uintptr_t start = (uintptr_t)b;
        uintptr_t end = start + b->size;
        uintptr_t user = (start + HEADER + alignment - 1) & ~(uintptr_t)(alignment - 1);
        /* A leading gap must be a free block of its own (at least MINIMUM) or nothing. */
        while (user - HEADER != start && user - HEADER - start < MINIMUM) user += alignment;
        uintptr_t head = user - HEADER;
        if (head + need > end) continue;
        block *next = b->next;
        if (head != start) {
            /* Keep the gap as a free block in b's place. */
            b->size = (uint32_t)(head - start);
            link = &b->next;
        } else {
            *link = next;
        }
        uintptr_t rest = end - (head + need);
        if (rest >= MINIMUM) {
            block *tail = (block *)(head + need);
            tail->size = (uint32_t)rest;
            tail->tag = 0;
            tail->next = next;
            *link = tail;
        } else {
            need += rest;
            *link = next;
        }
        block *used = (block *)head;
        used->size = (uint32_t)need;
        used->tag = USED_TAG;
        in_use += need;
        if (in_use > peak) peak = in_use;
        live += 1;
        allocations += 1;
#ifdef HEAP_TRACE
        board_console_str("heap: +");
        board_console_dec(size);
        board_console_str(" align ");
        board_console_dec(alignment);
        board_console_str(" in-use ");
        board_console_dec(in_use);
        board_console_str("\n");
#endif
        return (void *)user;
    }
    return NULL;
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void *) != 0) return EINVAL;
    void *p = allocate(alignment, size);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

void *malloc(size_t size) { return allocate(8, size); }

void *aligned_alloc(size_t alignment, size_t size) { return allocate(alignment, size); }

void *calloc(size_t count, size_t size) {
    size_t total = count * size;
    if (size != 0 && total / size != count) return NULL;
    void *p = allocate(8, total);
    if (p != NULL) memset(p, 0, total);
    return p;
}

void free(void *p) {
    if (p == NULL) return;
    block *b = (block *)((uintptr_t)p - HEADER);
    if (b->tag != USED_TAG) {
        board_console_str("heap: free of a bad pointer\n");
        board_exit(70);
    }
    b->tag = 0;
    in_use -= b->size;
#ifdef HEAP_TRACE
    board_console_str("heap: -");
    board_console_dec(b->size - HEADER);
    board_console_str(" in-use ");
    board_console_dec(in_use);
    board_console_str("\n");
#endif
    live -= 1;
    /* Insert in address order, merging with the neighbours. */
    block *prev = NULL, *cur = free_list;
    while (cur != NULL && cur < b) { prev = cur; cur = cur->next; }
    b->next = cur;
    if (cur != NULL && (uintptr_t)b + b->size == (uintptr_t)cur) {
        b->size += cur->size;
        b->next = cur->next;
    }
    if (prev != NULL) {
        prev->next = b;
        if ((uintptr_t)prev + prev->size == (uintptr_t)b) {
            prev->size += b->size;
            prev->next = b->next;
        }
    } else {
        free_list = b;
    }
}

void *realloc(void *p, size_t size) {
    if (p == NULL) return malloc(size);
    block *b = (block *)((uintptr_t)p - HEADER);
    size_t old = b->size - HEADER;
    if (size <= old) return p;
    void *q = malloc(size);
    if (q != NULL) {
        memcpy(q, p, old);
        free(p);
    }
    return q;
}

size_t board_heap_in_use(void) { return in_use; }
size_t board_heap_peak(void) { return peak; }
size_t board_heap_live(void) { return live; }
size_t board_heap_allocations(void) { return allocations; }
size_t board_heap_size(void) { return heap_total; }
