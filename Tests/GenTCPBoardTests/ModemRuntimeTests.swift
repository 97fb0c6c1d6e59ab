import Foundation
import GenTCPBoard
import GenTCPCore
import GenTCPModem
import GenTCPPOSIX
import GenTCPSerial
import ModemSimulator
import Testing

/// A board whose line is the host end of a memory line to the simulated module, on the real
/// clock. Used on one thread.
struct MemoryLineBoard: Board {
    let link: MemoryLink
    let origin = ContinuousClock.now

    mutating func readLine(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        if case .bytes(let n) = link.read(into: buffer) { return n }
        return 0
    }

    mutating func writeLine(_ bytes: UnsafeRawBufferPointer) -> Int {
        if case .bytes(let n) = link.write(bytes) { return n }
        return 0
    }

    func now() -> MillisecondInstant {
        let elapsed = ContinuousClock.now - origin
        return MillisecondInstant(milliseconds: elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
    }

    mutating func entropy() -> UInt64 { 0x5EED }

    mutating func idle(until deadline: MillisecondInstant?) { usleep(200) }
}

/// What the program saw, for the test to check afterwards.
final class EchoOutcome: @unchecked Sendable {
    var received: [UInt8] = []
    var failure: String?
}

/// A board program: once the network is up, connects to `port`, sends `payload` in an active
/// mode and stops when it all came back.
struct ModemEchoClient: BoardProgram {
    let port: UInt16
    let payload: [UInt8]
    let outcome: EchoOutcome
    var socket: BoardSocket?
    var sent = 0

    mutating func start<Interface: NetworkInterface & ~Copyable>(_ net: inout Net<Interface>) {
        do throws(SocketError) { try net.sendAfter(60_000, tag: 1) } catch { outcome.failure = "timer: \(error)" }
    }

    mutating func receive<Interface: NetworkInterface & ~Copyable>(_ message: BoardMessage, _ net: inout Net<Interface>) {
        switch message {
        case .networkUp:
            do throws(SocketError) {
                socket = try net.connect(to: .loopbackV4, port: port, options: [.mode(.binary), .active(.active)])
            } catch {
                finish(&net, "connect: \(error)")
            }
        case .connected(let s), .sendable(let s):
            while sent < payload.count {
                let n: Int
                do throws(SocketError) { n = try net.send(s, Array(payload[sent...])) } catch {
                    return finish(&net, "send: \(error)")
                }
                if n == 0 { break }
                sent += n
            }
        case .tcp(let s, let bytes):
            outcome.received += bytes
            if outcome.received.count >= payload.count {
                net.close(s)
                finish(&net, nil)
            }
        case .connectFailed(_, let error): finish(&net, "connect failed: \(error)")
        case .tcpClosed: finish(&net, "closed early")
        case .tcpError(_, let reason): finish(&net, "tcp error \(reason)")
        case .networkDown(let error): finish(&net, "network down: \(error)")
        case .timer: finish(&net, "no echo within 60 s")
        default: break
        }
    }

    mutating func finish<Interface: NetworkInterface & ~Copyable>(_ net: inout Net<Interface>, _ failure: String?) {
        outcome.failure = failure
        net.stop(status: failure == nil ? 0 : 1)
    }
}

@Suite("ModemInterface under the board run loop", .timeLimit(.minutes(5)))
struct ModemRuntimeTests {
    @Test("BoardRuntime + Net + ModemInterface: an active-mode program echoes 16 KiB through the ESP-AT simulator")
    func runtimeEcho() async throws {
        let payload = trickyBytes(16 * 1024, seed: 14)
        let server = LoopbackServer(.echo)
        let port = server.port
        let outcome = EchoOutcome()
        let status: Int32 = await offPool {
            guard let (host, module) = try? MemoryLink.pair(configuration: SerialConfiguration(baudRate: 4_000_000), bufferSize: 16_384) else {
                return -1
            }
            let bridge = ModemLinkBridge(link: module, configuration: .espAT(firmware: "3.3.0.0", seed: 15), driver: POSIXDriver.shared)
            defer { bridge.close() }
            bridge.modem.powerOn()
            let interface = ModemInterface(dialect: ESPATDialect(),
                                           configuration: ModemInterfaceConfiguration(wifiSSID: "sim-net", wifiPassword: "secret"))
            var runtime = BoardRuntime(board: MemoryLineBoard(link: host), interface: interface,
                                       program: ModemEchoClient(port: port, payload: payload, outcome: outcome))
            return runtime.run()
        }
        #expect(outcome.failure == nil)
        #expect(status == 0)
        #expect(outcome.received == payload)
    }
}
