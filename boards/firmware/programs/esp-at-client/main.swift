// The ESP-AT telemetry firmware: GenTCPBoardPrograms' telemetry client on the modem's UART
// (UART1 on mps2-an386, UART0 on riscv-virt). The module joins no network of its own here (the
// simulator's is up from the start); the client connects to a collector at 127.0.0.1:7007 through
// it, sends 5 readings 250 ms apart, checks each `ack N`, closes and exits with the program's
// status (0: every reading acknowledged and the close reached the module).
import CBoard
import GenTCPBoardPrograms
import GenTCPCore

let settings = TelemetrySettings(collector: .loopbackV4, port: 7007, count: 5, interval: 250)
let status = TelemetryFirmware.run(board: QEMUBoard(), settings: settings)
QEMUBoard.report("exit")
board_exit(status)
