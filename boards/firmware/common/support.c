/* What every board shares besides the heap: the reset code's common part, stack painting and
 * its scan, console number formatting, the stats line, and the stack-protector symbols. */
#include "board.h"

#define PAINT 0x5AFEC0DEu

extern uint32_t __stack_limit[];  /* lowest address of the stack (linker script) */
extern uint32_t __stack_top[];    /* initial stack pointer (linker script) */

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start[], __bss_end[];
extern int main(int argc, char **argv);

__attribute__((noreturn)) void board_boot(void) {
    board_stack_paint();
    uint32_t *src = __data_load;
    for (uint32_t *dst = __data_start; dst < __data_end;) *dst++ = *src++;
    for (uint32_t *dst = __bss_start; dst < __bss_end;) *dst++ = 0;
    board_init();
    board_console_str("board: ready\n");
    int status = main(0, 0);
    board_exit(status);
}

/* Paints from the stack's limit up to a little below this function's own frame. Called first
 * thing by the reset code, so everything above is still unused. */
__attribute__((noinline)) void board_stack_paint(void) {
    uint32_t *limit = __stack_limit;
    uint32_t *here = (uint32_t *)__builtin_frame_address(0) - 16;
    for (uint32_t *p = limit; p < here; p++) *p = PAINT;
}

size_t board_stack_high_water(void) {
    uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == PAINT) p++;
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

size_t board_stack_size(void) { return (size_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit); }

void board_console_str(const char *s) {
    size_t n = 0;
    while (s[n] != 0) n++;
    board_console_write(s, n);
}

void board_console_dec(uint64_t value) {
    char text[21];
    size_t at = sizeof text;
    /* 32-bit steps keep 64-bit division out of the common case. */
    if (value <= 0xFFFFFFFFu) {
        uint32_t v = (uint32_t)value;
        do { text[--at] = (char)('0' + v % 10); v /= 10; } while (v != 0);
    } else {
        do { text[--at] = (char)('0' + value % 10); value /= 10; } while (value != 0);
    }
    board_console_write(text + at, sizeof text - at);
}

void board_console_hex(uint64_t value) {
    char text[18];
    text[0] = '0';
    text[1] = 'x';
    for (int i = 0; i < 16; i++) text[2 + i] = "0123456789abcdef"[(value >> (60 - 4 * i)) & 15];
    board_console_write(text, sizeof text);
}

void board_report(const char *label) {
    board_console_str("stats ");
    board_console_str(label);
    board_console_str(" heap-in-use=");
    board_console_dec(board_heap_in_use());
    board_console_str(" heap-peak=");
    board_console_dec(board_heap_peak());
    board_console_str(" heap-live=");
    board_console_dec(board_heap_live());
    board_console_str(" allocations=");
    board_console_dec(board_heap_allocations());
    board_console_str(" stack-high-water=");
    board_console_dec(board_stack_high_water());
    board_console_str(" uptime-ms=");
    board_console_dec(board_millis());
    board_console_str("\n");
}

/* Stack protectors (on by default in Swift and GCC): the guard is re-seeded from the board's
 * entropy at start-up. */
uintptr_t __stack_chk_guard = 0x2F8A5C13u;

__attribute__((noreturn)) void __stack_chk_fail(void) {
    board_console_str("stack smashing detected\n");
    board_exit(71);
}

/* Entropy mixing shared by the boards: a 64-bit finaliser (splitmix64's constants). */
uint64_t board_mix64(uint64_t state, uint64_t sample) {
    uint64_t z = state + sample + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
