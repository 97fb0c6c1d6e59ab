import GenTCP
import GenTCPCore
import GenTCPPOSIX
import ModemSimulator
import Synchronization
import Testing

struct TapeTimeout: Error, CustomStringConvertible {
    let needle: String
    let seen: String
    var description: String { "timed out waiting for \(needle.debugDescription); unread: \(seen.debugDescription)" }
}

/// Everything a module said, read in order: ``next(_:)`` waits for a string and consumes up to it.
final class UDPTape: Sendable {
    private let state = Mutex<(bytes: [UInt8], cursor: Int)>(([], 0))

    func append(_ bytes: [UInt8]) { state.withLock { $0.bytes += bytes } }

    /// What has not been consumed yet.
    var unread: String { state.withLock { String(decoding: $0.bytes[$0.cursor...], as: UTF8.self) } }

    /// Waits (generously: loaded machines are slow) until `needle` comes; returns the text from
    /// the last consumed byte through `needle`, and consumes it.
    func next(_ needle: String, timeout: Duration = .seconds(60)) async throws -> String {
        try await next(any: [needle], timeout: timeout)
    }

    /// As ``next(_:)``, up to whichever of `needles` ends first.
    func next(any needles: [String], timeout: Duration = .seconds(60)) async throws -> String {
        let patterns = needles.map { Array($0.utf8) }
        let deadline = ContinuousClock.now + timeout
        while true {
            let found: String? = state.withLock { s in
                let ends = patterns.compactMap { s.bytes[s.cursor...].firstRange(of: $0)?.upperBound }
                guard let end = ends.min() else { return nil }
                defer { s.cursor = end }
                return String(decoding: s.bytes[s.cursor..<end], as: UTF8.self)
            }
            if let found { return found }
            if ContinuousClock.now > deadline { throw TapeTimeout(needle: needles.joined(separator: " | "), seen: unread) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// A module on the posix driver, its UDP links on real loopback sockets, the host side as
/// raw AT text.
struct UDPModem {
    let modem: ModemSimulator
    let tape: UDPTape
    /// Lines end in CR-LF (ESP-AT) or CR (cellular modules).
    let end: String

    init(_ configuration: ModemSimulatorConfiguration) {
        let tape = UDPTape()
        self.tape = tape
        self.end = configuration.dialect == .espAT ? "\r\n" : "\r"
        modem = ModemSimulator(configuration, driver: POSIXDriver.posix) { tape.append($0) }
    }

    func boot() async throws {
        modem.powerOn()
        switch modem.configuration.dialect {
        case .espAT: _ = try await tape.next("ready\r\n")
        case .sim800: _ = try await tape.next("SMS Ready\r\n")
        case .bg96: _ = try await tape.next("APP RDY\r\n")
        }
        try await sayOK("ATE0")
    }

    /// Sends a command line; returns the answer up to and including `until`.
    @discardableResult
    func say(_ command: String, until: String) async throws -> String {
        modem.input(Array((command + end).utf8))
        return try await tape.next(until)
    }

    /// A command that must answer `OK`; returns the answer.
    @discardableResult
    func sayOK(_ command: String) async throws -> String {
        modem.input(Array((command + end).utf8))
        let answer = try await tape.next(any: ["OK\r\n", "ERROR\r\n"])
        #expect(answer.hasSuffix("OK\r\n"), "\(command): \(answer.debugDescription)")
        return answer
    }

    /// Waits until `condition` holds on the module (its statistics, its buffers).
    func waitUntil(_ what: String, timeout: Duration = .seconds(60), _ condition: (ModemSimulator) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(modem) {
            if ContinuousClock.now > deadline { throw TapeTimeout(needle: what, seen: tape.unread) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    func powerOff() { modem.powerOff() }
}

/// A loopback UDP peer of the tests.
func udpPeer() async throws -> UDPSocket {
    try await UDPSocket.open(port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)],
                             driver: POSIXDriver.posix)
}

/// A loopback UDP port free a moment ago, for the module's fixed local ports.
func freeUDPPort() async throws -> Int {
    let probe = try await udpPeer()
    defer { probe.close() }
    return try probe.port()
}

/// The peer's next datagram, waiting generously.
func nextDatagram(_ socket: UDPSocket) async throws -> Datagram {
    try await socket.recv(timeout: .milliseconds(60_000))
}
