/* The board contract between GenTCP firmware (Swift) and a board's C support.
 *
 * Every board provides these functions; common/ holds the parts every board shares (heap,
 * stack painting, console formatting). Nothing here blocks except board_idle.
 */
#ifndef GENTCP_BOARD_H
#define GENTCP_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Clocks, UARTs, interrupts. Called once by board_boot before main. */
void board_init(void);

/* The reset code's common part (common/support.c): paints the stack, copies .data, clears .bss,
 * runs board_init, then main, and exits with main's status. */
__attribute__((noreturn)) void board_boot(void);

/* Milliseconds since boot, monotonic. */
uint64_t board_millis(void);

/* The line UART (SLIP or the modem): moves up to cap received bytes into buf without waiting. */
size_t board_line_read(uint8_t *buf, size_t cap);
/* Writes len bytes to the line UART (polled); returns len. */
size_t board_line_write(const uint8_t *buf, size_t len);

/* 64 bits that differ from boot to boot (timer jitter around host-timed spins under QEMU). */
uint64_t board_entropy(void);

/* Sleeps (WFI) until line input arrives or deadline_ms passes (deadline_ms < 0: no deadline,
 * the board's own tick still wakes it). May return early. */
void board_idle(int64_t deadline_ms);

/* The debug console (never the line). */
void board_console_write(const char *buf, size_t len);
void board_console_str(const char *s);
void board_console_dec(uint64_t value);
void board_console_hex(uint64_t value);
/* One line: "stats heap-in-use=N heap-peak=N heap-live=N allocations=N stack-high-water=N". */
void board_report(const char *label);

/* Ends the emulation with an exit status (semihosting on mps2, the SiFive test device on virt). */
__attribute__((noreturn)) void board_exit(int status);

/* Heap counters (bytes include the allocator's 8-byte block headers and rounding). */
size_t board_heap_in_use(void);
size_t board_heap_peak(void);
size_t board_heap_live(void);
size_t board_heap_allocations(void);
size_t board_heap_size(void);

/* Stack painting: the reset code paints the stack; the scan finds the deepest use so far. */
void board_stack_paint(void);
size_t board_stack_high_water(void);
size_t board_stack_size(void);

/* Mixes a sample into a 64-bit state (a splitmix64 finaliser); the boards' entropy uses it. */
uint64_t board_mix64(uint64_t state, uint64_t sample);

/* Heap region setup (called by board_init's caller from the linker symbols). */
void board_heap_init(void *start, void *end);

#endif
