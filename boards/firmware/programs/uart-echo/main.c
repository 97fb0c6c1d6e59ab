/* C-only UART echo: every byte the line UART receives goes straight back. No stack, no Swift:
 * the goodput ceiling the QEMU UART model sets, measured beside the GenTCP firmware. */
#include "board.h"

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    board_console_str("uart-echo: echoing\n");
    uint8_t chunk[256];
    for (;;) {
        size_t n = board_line_read(chunk, sizeof chunk);
        if (n == 0) {
            board_idle(-1);
            continue;
        }
        board_line_write(chunk, n);
    }
}
