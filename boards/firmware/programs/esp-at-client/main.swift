// ESP-AT client firmware (interim, until GenTCPBoardPrograms' telemetry program): GenTCPModem's
// engine drives an ESP-AT module on the board's line UART (UART1 on mps2-an386, UART0 on
// riscv-virt), opens TCP to 127.0.0.1:7007 through it, sends one line and waits for the same
// bytes back (an echo collector), closes, and exits 0 (1 on any failure).
import CBoard
import GenTCPCore
import GenTCPModem

func fail(_ why: StaticString) -> Never {
    QEMUBoard.console("esp-at-client: failed: ")
    QEMUBoard.console(why)
    board_console_str("\n")
    QEMUBoard.report("exit")
    board_exit(1)
}

func runClient() -> Never {
    var board = QEMUBoard()
    var engine = ModemEngine(dialect: ESPATDialect())
    let line: StaticString = "gentcp esp-at-client: hello from the board\n"
    let payload = UnsafeRawBufferPointer(start: line.utf8Start, count: line.utf8CodeUnitCount)
    let input = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 4)
    let output = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 4)
    // The command sequence; `step` is the next one to submit, `waiting` a command in flight.
    var step = 0
    var waiting = false
    var connected = false
    var sent = 0
    var matched = 0
    var closed = false
    board.log("esp-at-client: starting")

    func submit(_ command: ModemCommand, _ engine: inout ModemEngine<ESPATDialect>, _ now: MillisecondInstant) {
        do throws(ModemError) {
            try engine.submit(command, now: now)
        } catch {
            fail("a command was refused")
        }
    }

    while true {
        let now = board.now()
        var moved = false
        let count = board.readLine(into: input)
        var handler: (inout ModemEngine<ESPATDialect>, ModemEvent) -> Void = { _, event in
            switch event {
            case .commandCompleted(let completion):
                waiting = false
                if completion.outcome != .success {
                    if completion.command == .probe { step = 0 } else { fail("a command failed") }
                }
            case .connected:
                connected = true
            case .connectFailed:
                fail("the connection failed")
            case .received(_, let bytes):
                for byte in bytes {
                    guard matched < payload.count, byte == payload[matched] else { fail("the echo differs") }
                    matched += 1
                }
            case .closed:
                closed = true
            default:
                break
            }
        }
        if count > 0 {
            moved = true
            engine.receive(UnsafeRawBufferPointer(rebasing: input[0..<count]), now: now, handler)
        } else {
            engine.advance(now: now, handler)
        }
        handler = { _, _ in }
        if !waiting && engine.isIdle {
            switch step {
            case 0: submit(.probe, &engine, now)
            case 1: submit(.echoOff, &engine, now)
            case 2: submit(.enableMultiplexing, &engine, now)
            case 3: submit(.connect(link: 0, host: "127.0.0.1", port: 7007), &engine, now)
            default: break
            }
            if step <= 3 {
                step += 1
                waiting = true
                moved = true
            } else if connected && sent < payload.count {
                do throws(ModemError) {
                    sent += try engine.send(UnsafeRawBufferPointer(rebasing: payload[sent...]), link: 0, now: now)
                    waiting = true
                    moved = true
                } catch {
                    fail("send refused")
                }
            } else if matched == payload.count && !closed && step == 4 {
                submit(.close(link: 0), &engine, now)
                step = 5
                waiting = true
                moved = true
            } else if step == 5 {
                board.log("esp-at-client: echo matched, closed")
                QEMUBoard.report("exit")
                board_exit(0)
            }
        }
        let n = engine.drainOutput(into: output)
        if n > 0 {
            var at = 0
            while at < n { at += board.writeLine(UnsafeRawBufferPointer(rebasing: output[at..<n])) }
            moved = true
        }
        if !moved { board.idle(until: engine.nextDeadline) }
    }
}

runClient()
