import Foundation
import GenTCPBoard
import GenTCPCore
import GenTCPModem
import GenTCPPOSIX
import GenTCPSerial
import ModemSimulator

#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking work on a thread of its own, never on the cooperative pool (whose one or two
/// threads GenTCP's own processes, the simulator's among them, need).
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// Bytes that look like AT traffic now and then (`\r\nOK\r\n`, `+IPD,0,3:`, `>`), so a
/// framing slip shows: a seeded mix of those and plain bytes.
func trickyBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    let pieces: [[UInt8]] = [Array("\r\nOK\r\n".utf8), Array("+IPD,0,3:".utf8), Array(">".utf8),
                             Array("0,CLOSED\r\n".utf8), Array("ready\r\n".utf8)]
    var out: [UInt8] = []
    out.reserveCapacity(count)
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    while out.count < count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        if state % 16 == 0 {
            out += pieces[Int(state >> 8) % pieces.count]
        } else {
            out.append(UInt8(truncatingIfNeeded: state >> 24))
        }
    }
    return Array(out[0..<count])
}

/// A TCP server on 127.0.0.1 made with the kernel's sockets (the module's far end), serving one
/// connection on a thread of its own.
final class LoopbackServer: @unchecked Sendable {
    /// What the server does with its one connection.
    enum Mode: Sendable {
        /// Echoes every byte until the peer closes, then closes.
        case echo
        /// Sends these bytes, then closes (FIN).
        case sendThenClose([UInt8])
    }

    let port: UInt16
    private let listener: Int32
    private let done = NSCondition()
    private var finished = false
    /// What the server read, in echo mode.
    private(set) var received = 0

    init(_ mode: Mode) {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        port = LoopbackServer.bind(listener)
        listen(listener, 1)
        let fd = listener
        Thread { [self] in
            let conn = accept(fd, nil, nil)
            if conn >= 0 {
                switch mode {
                case .echo: self.echo(conn)
                case .sendThenClose(let data): LoopbackServer.writeAll(conn, data)
                }
                close(conn)
            }
            done.lock()
            finished = true
            done.broadcast()
            done.unlock()
        }.start()
    }

    deinit { close(listener) }

    /// Binds `fd` to 127.0.0.1 on a free port; returns the port.
    static func bind(_ fd: Int32) -> UInt16 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// A port on 127.0.0.1 where nobody listens (bound, then closed): connects are refused.
    static func refusingPort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let port = bind(fd)
        close(fd)
        return port
    }

    static func writeAll(_ fd: Int32, _ data: [UInt8]) {
        var offset = 0
        while offset < data.count {
            let n = data[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            offset += n
        }
    }

    private func echo(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            received += n
            LoopbackServer.writeAll(fd, Array(buffer[0..<n]))
        }
    }

    /// Waits until the connection was served (or `seconds` passed); true when it was.
    func waitFinished(seconds: Double) -> Bool {
        done.lock()
        defer { done.unlock() }
        let limit = Date().addingTimeInterval(seconds)
        while !finished { if !done.wait(until: limit) { return false } }
        return true
    }
}

/// A rig with the ESP-AT dialect.
typealias ESPRig = ModemRig<ESPATDialect>

/// A simulated module on a fast memory line, and a ``ModemInterface`` driven the way a board's
/// run loop drives it: line bytes in, line bytes out, polls on a real millisecond clock. Used on
/// one thread only.
final class ModemRig<D: ModemDialect> {
    let bridge: ModemLinkBridge
    let host: MemoryLink
    var interface: ModemInterface<D>
    /// Every event the interface handed out, in order.
    var events: [InterfaceEvent] = []
    private let origin = ContinuousClock.now
    private var input = [UInt8](repeating: 0, count: 512)
    private var output = [UInt8](repeating: 0, count: 512)
    private var pending: ArraySlice<UInt8> = []
    /// The line hung up (and the interface was told).
    private(set) var lineGone = false

    init(dialect: D, simulator: ModemSimulatorConfiguration, configuration: ModemInterfaceConfiguration) throws {
        let (host, module) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 4_000_000), bufferSize: 16_384)
        self.host = host
        bridge = ModemLinkBridge(link: module, configuration: simulator, driver: POSIXDriver.shared)
        interface = ModemInterface(dialect: dialect, configuration: configuration)
    }

    deinit { bridge.close() }

    var now: MillisecondInstant {
        let elapsed = ContinuousClock.now - origin
        return MillisecondInstant(milliseconds: elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Powers the module on and starts the interface.
    func boot() {
        bridge.modem.powerOn()
        interface.start(now: now)
    }

    /// One turn of the loop; true when anything moved.
    @discardableResult
    func turn() -> Bool {
        var moved = false
        let result = input.withUnsafeMutableBytes { host.read(into: $0) }
        if result == .hangUp && !lineGone {
            lineGone = true
            interface.lineLost()
        }
        if case .bytes(let n) = result, n > 0 {
            let t = now
            input.withUnsafeBytes { interface.input(UnsafeRawBufferPointer(rebasing: $0[0..<n]), now: t) }
            moved = true
        }
        if pending.isEmpty {
            let t = now
            let n = output.withUnsafeMutableBytes { interface.output(into: $0, now: t) }
            if n > 0 { pending = output[0..<n] }
        }
        if !pending.isEmpty, case .bytes(let n) = pending.withUnsafeBytes({ host.write($0) }), n > 0 {
            pending = pending.dropFirst(n)
            moved = true
        }
        _ = interface.poll(now: now)
        while let event = interface.nextEvent() {
            events.append(event)
            moved = true
        }
        return moved
    }

    /// Whether the interface handed out `event`.
    func saw(_ event: InterfaceEvent) -> Bool { events.contains(event) }

    /// Turns the loop until `done` holds or `seconds` pass; true when it held.
    func run(seconds: Double = 60, until done: (ModemRig<D>) -> Bool) -> Bool {
        let limit = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !done(self) {
            if ContinuousClock.now > limit { return false }
            if !turn() { usleep(200) }
        }
        return true
    }

    /// Starts the module and waits for `up`.
    func bootAndWaitUp() -> Bool {
        boot()
        return run(seconds: 30) { $0.interface.isUp }
    }

    /// Connects to 127.0.0.1:`port`; the connection, or the failure the interface reported.
    func connect(port: UInt16) -> Result<InterfaceConnection, SocketError> {
        let c: InterfaceConnection
        do throws(SocketError) {
            c = try interface.connect(to: .loopbackV4, port: port, settings: InterfaceSettings(), now: now)
        } catch {
            return .failure(error)
        }
        var outcome: Result<InterfaceConnection, SocketError>?
        var seen = events.count
        _ = run(seconds: 40) { rig in
            while seen < rig.events.count {
                switch rig.events[seen] {
                case .connected(let x) where x == c: outcome = .success(c)
                case .failed(let x, let e) where x == c: outcome = .failure(e)
                default: break
                }
                seen += 1
            }
            return outcome != nil
        }
        return outcome ?? .failure(SocketError(.timeout, "no connect result within 40 s"))
    }
}

extension ModemRig where D == ESPATDialect {
    /// An ESP-AT module (firmware 3.3 unless given) and an interface with two links that joins
    /// the simulator's Wi-Fi.
    convenience init(simulator: ModemSimulatorConfiguration = .espAT(firmware: "3.3.0.0", seed: 5),
                     configuration: ModemInterfaceConfiguration = ModemInterfaceConfiguration(
                         wifiSSID: "sim-net", wifiPassword: "secret", links: 2)) throws {
        try self.init(dialect: ESPATDialect(), simulator: simulator, configuration: configuration)
    }
}
