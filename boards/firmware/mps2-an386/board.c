/* QEMU mps2-an386 (Cortex-M4, 25 MHz): vector table, reset handler, SysTick millisecond clock,
 * CMSDK UARTs (the line's RX interrupt fills a ring), WFI idle, semihosting exit.
 *
 * LINE_UART selects the line (0 or 1); the debug console is the other one of UART0/UART1. */
#include "board.h"

#ifndef LINE_UART
#define LINE_UART 0
#endif
#define CONSOLE_UART (1 - LINE_UART)

#define REG(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART */
#define UART_BASE(n) (0x40004000u + 0x1000u * (n))
#define UART_DATA(n) REG(UART_BASE(n) + 0x00)
#define UART_STATE(n) REG(UART_BASE(n) + 0x04)
#define UART_CTRL(n) REG(UART_BASE(n) + 0x08)
#define UART_INTCLEAR(n) REG(UART_BASE(n) + 0x0C)
#define UART_BAUDDIV(n) REG(UART_BASE(n) + 0x10)
#define STATE_TX_FULL 1u
#define STATE_RX_FULL 2u
#define CTRL_TX_EN 1u
#define CTRL_RX_EN 2u
#define CTRL_RX_INT 8u
#define INT_RX 2u

/* SysTick, NVIC, SCB */
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define NVIC_ISER0 REG(0xE000E100u)
#define NVIC_IPR(n) (*(volatile uint8_t *)(0xE000E400u + (n)))

#define CORE_HZ 25000000u
#define BAUD 115200u

extern uint32_t __heap_start[], __heap_end[], __stack_top[];
extern uintptr_t __stack_chk_guard;

/* ---- clock ---- */

static volatile uint32_t ticks_low, ticks_high;

void SysTick_Handler(void) {
    uint32_t low = ticks_low + 1;
    if (low == 0) ticks_high += 1;
    ticks_low = low;
}

uint64_t board_millis(void) {
    uint32_t high, low;
    do {
        high = ticks_high;
        low = ticks_low;
    } while (high != ticks_high);
    return ((uint64_t)high << 32) | low;
}

/* ---- line UART: RX interrupt into a ring ---- */

/* The interrupt moves received bytes into the ring. When the ring is full it leaves the byte in
 * the UART and masks its RX interrupt until the loop has read from the ring: the UART then
 * holds its line (QEMU stops taking bytes from the pty) and nothing is ever dropped. */
#define RING 2048u
static volatile uint8_t ring[RING];
static volatile uint32_t ring_head, ring_tail; /* head: written by the interrupt */
static volatile uint32_t ring_stalls;          /* times the ring filled up */

static void line_rx_handler(void) {
    UART_INTCLEAR(LINE_UART) = INT_RX;
    while (UART_STATE(LINE_UART) & STATE_RX_FULL) {
        uint32_t head = ring_head;
        if (head - ring_tail >= RING) {
            UART_CTRL(LINE_UART) &= ~CTRL_RX_INT;
            ring_stalls += 1;
            return;
        }
        ring[head % RING] = (uint8_t)UART_DATA(LINE_UART);
        ring_head = head + 1;
    }
}

void UART0_RX_Handler(void) { line_rx_handler(); }
void UART1_RX_Handler(void) { line_rx_handler(); }

size_t board_line_read(uint8_t *buf, size_t cap) {
    uint32_t tail = ring_tail;
    uint32_t available = ring_head - tail;
    size_t n = available < cap ? available : cap;
    for (size_t i = 0; i < n; i++) buf[i] = ring[(tail + i) % RING];
    ring_tail = tail + (uint32_t)n;
    if (n > 0 && !(UART_CTRL(LINE_UART) & CTRL_RX_INT)) {
        /* Room again: take input by interrupt (a byte waiting in the UART raises it at once). */
        __asm volatile("cpsid i" ::: "memory");
        UART_CTRL(LINE_UART) |= CTRL_RX_INT;
        line_rx_handler();
        __asm volatile("cpsie i" ::: "memory");
    }
    return n;
}

size_t board_line_write(const uint8_t *buf, size_t len) {
    for (size_t i = 0; i < len; i++) {
        while (UART_STATE(LINE_UART) & STATE_TX_FULL) {}
        UART_DATA(LINE_UART) = buf[i];
    }
    return len;
}

void board_console_write(const char *buf, size_t len) {
    for (size_t i = 0; i < len; i++) {
        while (UART_STATE(CONSOLE_UART) & STATE_TX_FULL) {}
        UART_DATA(CONSOLE_UART) = (uint8_t)buf[i];
    }
}

/* ---- idle ---- */

void board_idle(int64_t deadline_ms) {
    /* SysTick wakes us every millisecond, so the deadline needs no timer of its own. */
    if (deadline_ms >= 0 && (int64_t)board_millis() >= deadline_ms) return;
    __asm volatile("cpsid i" ::: "memory");
    if (ring_head == ring_tail && (UART_CTRL(LINE_UART) & CTRL_RX_INT)) __asm volatile("wfi" ::: "memory");
    __asm volatile("cpsie i" ::: "memory");
}

/* ---- entropy ---- */

/* Under QEMU (no -icount) the guest runs as fast as the host lets it while SysTick follows the
 * host's clock: how many loop turns fit in each millisecond tick varies from boot to boot (host
 * load, translation, scheduling), and so do the low bits of SysTick's current value sampled at
 * the end of each count. 16 ticks are counted (16 ms of boot time). */
uint64_t board_entropy(void) {
    uint64_t state = 0x6A09E667F3BCC908ull;
    for (int round = 0; round < 16; round++) {
        uint32_t start = ticks_low;
        uint32_t turns = 0;
        while (ticks_low == start) turns++;
        for (uint32_t i = 0; i < (turns & 0xFFu); i++) __asm volatile("" ::: "memory");
        state = board_mix64(state, ((uint64_t)SYST_CVR << 32) | turns);
    }
    return state;
}

/* ---- exit (semihosting SYS_EXIT_EXTENDED) ---- */

__attribute__((noreturn)) void board_exit(int status) {
    volatile uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
    register uint32_t r0 __asm("r0") = 0x20; /* SYS_EXIT_EXTENDED */
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
    for (;;) __asm volatile("wfi");
}

/* ---- start-up ---- */

void board_init(void) {
    board_heap_init(__heap_start, __heap_end);
    for (int n = 0; n < 2; n++) {
        UART_BAUDDIV(n) = CORE_HZ / BAUD;
        UART_CTRL(n) = CTRL_TX_EN | CTRL_RX_EN | (n == LINE_UART ? CTRL_RX_INT : 0);
    }
    /* UART0 RX is IRQ 0, UART1 RX is IRQ 2. */
    NVIC_IPR(2 * LINE_UART) = 0x80;
    NVIC_ISER0 = 1u << (2 * LINE_UART);
    SYST_RVR = CORE_HZ / 1000u - 1;
    SYST_CVR = 0;
    SYST_CSR = 7; /* processor clock, interrupt, enable */
    __asm volatile("cpsie i" ::: "memory");
    __stack_chk_guard ^= (uintptr_t)board_entropy();
}

static void report_fault(const char *what) {
    board_console_str(what);
    board_console_str("\n");
    board_exit(72);
}

void HardFault_Handler(void) { report_fault("hard fault"); }
void Default_Handler(void) { report_fault("unexpected interrupt"); }

__attribute__((noreturn)) void Reset_Handler(void) {
    board_boot();
}

typedef void (*vector)(void);

__attribute__((section(".vectors"), used)) const vector vectors[16 + 32] = {
    (vector)(uintptr_t)__stack_top,
    Reset_Handler,
    Default_Handler,      /* NMI */
    HardFault_Handler,
    HardFault_Handler,    /* MemManage */
    HardFault_Handler,    /* BusFault */
    HardFault_Handler,    /* UsageFault */
    0, 0, 0, 0,
    Default_Handler,      /* SVCall */
    Default_Handler,      /* DebugMonitor */
    0,
    Default_Handler,      /* PendSV */
    SysTick_Handler,
    [16 + 0] = UART0_RX_Handler,
    [16 + 1] = Default_Handler,
    [16 + 2] = UART1_RX_Handler,
    [16 + 3 ... 16 + 31] = Default_Handler,
};
