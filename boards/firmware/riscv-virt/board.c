/* QEMU virt (RV32IMAC, -bios none): NS16550A UART0 as the line (FIFO, polled), CLINT mtime
 * clock (10 MHz), WFI woken through mie (timer compare, PLIC for the UART) without traps,
 * semihosting SYS_WRITE0 debug console, SiFive test device exit. */
#include "board.h"

#define REG8(addr) (*(volatile uint8_t *)(addr))
#define REG32(addr) (*(volatile uint32_t *)(addr))

#define UART 0x10000000u
#define RBR REG8(UART + 0)
#define THR REG8(UART + 0)
#define IER REG8(UART + 1)
#define FCR REG8(UART + 2)
#define LCR REG8(UART + 3)
#define MCR REG8(UART + 4)
#define LSR REG8(UART + 5)
#define DLL REG8(UART + 0)
#define DLM REG8(UART + 1)
#define LSR_DR 0x01u
#define LSR_THRE 0x20u
#define UART_IRQ 10u

#define CLINT 0x02000000u
#define MTIMECMP_LO REG32(CLINT + 0x4000)
#define MTIMECMP_HI REG32(CLINT + 0x4004)
#define MTIME_LO REG32(CLINT + 0xBFF8)
#define MTIME_HI REG32(CLINT + 0xBFFC)
#define MTIME_HZ 10000000u

#define PLIC 0x0C000000u
#define PLIC_PRIORITY(n) REG32(PLIC + 4u * (n))
#define PLIC_ENABLE0 REG32(PLIC + 0x2000u)
#define PLIC_THRESHOLD0 REG32(PLIC + 0x200000u)
#define PLIC_CLAIM0 REG32(PLIC + 0x200004u)

#define TEST_DEVICE REG32(0x00100000u)

extern uint32_t __heap_start[], __heap_end[];
extern uintptr_t __stack_chk_guard;
extern long board_semihost(long operation, const void *argument);

static uint64_t mtime(void) {
    uint32_t high, low;
    do {
        high = MTIME_HI;
        low = MTIME_LO;
    } while (high != MTIME_HI);
    return ((uint64_t)high << 32) | low;
}

uint64_t board_millis(void) {
    /* mtime / 10000 without a 64-bit division: (t >> 4) / 625 in two 32-bit steps would still
     * need care, so accept libgcc's __udivdi3 here (it is linked anyway). */
    return mtime() / (MTIME_HZ / 1000u);
}

size_t board_line_read(uint8_t *buf, size_t cap) {
    size_t n = 0;
    while (n < cap && (LSR & LSR_DR)) buf[n++] = RBR;
    return n;
}

size_t board_line_write(const uint8_t *buf, size_t len) {
    for (size_t i = 0; i < len; i++) {
        while (!(LSR & LSR_THRE)) {}
        THR = buf[i];
    }
    return len;
}

/* SYS_WRITE0 wants a NUL-terminated string: send in chunks. */
void board_console_write(const char *buf, size_t len) {
    char chunk[65];
    while (len > 0) {
        size_t n = len < 64 ? len : 64;
        for (size_t i = 0; i < n; i++) chunk[i] = buf[i];
        chunk[n] = 0;
        board_semihost(0x04, chunk);
        buf += n;
        len -= n;
    }
}

void board_idle(int64_t deadline_ms) {
    if (LSR & LSR_DR) return;
    uint64_t now = mtime();
    uint64_t wake = now + MTIME_HZ / 100u; /* at least every 10 ms */
    if (deadline_ms >= 0) {
        uint64_t due = (uint64_t)deadline_ms * (MTIME_HZ / 1000u);
        if (due <= now) return;
        if (due < wake) wake = due;
    }
    MTIMECMP_HI = 0xFFFFFFFFu;
    MTIMECMP_LO = (uint32_t)wake;
    MTIMECMP_HI = (uint32_t)(wake >> 32);
    if (!(LSR & LSR_DR)) __asm volatile("wfi" ::: "memory");
    /* Acknowledge the UART's interrupt at the PLIC so the next one can wake us. */
    uint32_t claimed = PLIC_CLAIM0;
    if (claimed != 0) PLIC_CLAIM0 = claimed;
}

/* Under QEMU (no -icount) the guest runs as fast as the host lets it while mtime follows the
 * host's clock: how many loop turns fit in each 100 µs step of mtime varies from boot to boot
 * (host load, translation, scheduling), and so do mtime's low bits at the end of each count.
 * 32 steps are counted (3.2 ms of boot time). */
uint64_t board_entropy(void) {
    uint64_t state = 0xBB67AE8584CAA73Bull;
    for (int round = 0; round < 32; round++) {
        uint32_t start = MTIME_LO / 1000u;
        uint32_t turns = 0;
        while (MTIME_LO / 1000u == start) turns++;
        state = board_mix64(state, ((uint64_t)MTIME_LO << 32) | turns);
    }
    return state;
}

__attribute__((noreturn)) void board_exit(int status) {
    TEST_DEVICE = status == 0 ? 0x5555u : (((uint32_t)status << 16) | 0x3333u);
    for (;;) __asm volatile("wfi");
}

void board_trap(void) {
    uint32_t cause, epc;
    __asm volatile("csrr %0, mcause" : "=r"(cause));
    __asm volatile("csrr %0, mepc" : "=r"(epc));
    board_console_str("trap mcause=");
    board_console_hex(cause);
    board_console_str(" mepc=");
    board_console_hex(epc);
    board_console_str("\n");
    board_exit(72);
}

void board_init(void) {
    board_heap_init(__heap_start, __heap_end);
    LCR = 0x80;      /* divisor latch */
    DLL = 1;         /* the fastest rate; QEMU ignores it on a pty anyway */
    DLM = 0;
    LCR = 0x03;      /* 8N1 */
    FCR = 0xC7;      /* FIFO on, cleared, trigger level 14 */
    MCR = 0x08;      /* OUT2: interrupt line enabled */
    IER = 0x01;      /* received data available */
    PLIC_PRIORITY(UART_IRQ) = 1;
    PLIC_ENABLE0 = 1u << UART_IRQ;
    PLIC_THRESHOLD0 = 0;
    /* Machine timer and external interrupts may wake WFI; mstatus.MIE stays 0: no traps. */
    __asm volatile("csrs mie, %0" ::"r"((1u << 7) | (1u << 11)));
    __stack_chk_guard ^= (uintptr_t)board_entropy();
}

__attribute__((noreturn)) void board_start(void) {
    board_boot();
}
