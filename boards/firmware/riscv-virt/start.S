/* QEMU virt (RV32IMAC, -bios none): hart 0 sets gp and sp and enters board_start; other harts
 * park. Machine mode throughout; no trap is ever taken (interrupts only wake WFI). */
    .section .text.start, "ax"
    .globl _start
_start:
    csrr t0, mhartid
    bnez t0, park
.option push
.option norelax
    la gp, __global_pointer$
.option pop
    la sp, __stack_top
    csrw mie, zero
    csrci mstatus, 8
    la t0, trap
    csrw mtvec, t0
    call board_start
park:
    wfi
    j park

    .balign 4
trap:
    /* Nothing enables traps; one means a fault: report and exit. */
    call board_trap
    j park

/* Semihosting call: a0 = operation, a1 = argument; the three-instruction sequence must not
 * be compressed and must sit in one page. */
    .section .text.semihost, "ax"
    .balign 16
    .globl board_semihost
board_semihost:
.option push
.option norvc
    slli zero, zero, 0x1f
    ebreak
    srai zero, zero, 7
.option pop
    ret
