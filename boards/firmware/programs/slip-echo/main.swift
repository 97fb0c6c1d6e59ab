// The SLIP echo firmware: GenTCPBoardPrograms' echo (TCP 7), discard (9) and source (19)
// server, ICMP echo, on the board's line UART. Board 10.13.0.2, host 10.13.0.1 (the
// qemu-*.json profiles), MTU 1006, 115200 baud, 1,460-byte buffers, one connection at a time
// (issue 13's RAM reference; each more costs a 3.5 KB slot); built as `slip-echo-4k`, the
// connection's window is 4 KiB (three segments and more in flight).
import CBoard
import GenTCPBoardPrograms
import GenTCPWire

#if ECHO_WINDOW_4K
let window = 4096
#else
let window = 1460
#endif

let settings = SLIPEchoSettings(
    local: IPv4Address(10, 13, 0, 2), peer: IPv4Address(10, 13, 0, 1), mtu: 1006, baud: 115_200, buffer: 1460,
    window: window, connections: 1)
let status = SLIPEchoFirmware.run(board: QEMUBoard(), settings: settings)
QEMUBoard.report("exit")
board_exit(status)
