@testable import GenTCPTLS
import Synchronization
import TLSTestSupport
import Testing

/// A runtime whose timers run only when the test says: the TLS layer's "call the socket back
/// later" and its close linger.
final class ManualRuntime: Runtime, @unchecked Sendable {
    private let lock = Mutex<(next: UInt64, due: [(TimerID, UInt64, @Sendable () -> Void)])>((1, []))
    var now: UInt64 { 0 }
    var executor: (any TaskExecutor)? { nil }

    func schedule(afterNanoseconds nanoseconds: UInt64, _ action: @escaping @Sendable () -> Void) -> TimerID {
        lock.withLock { s in
            let id = TimerID(s.next)
            s.next += 1
            s.due.append((id, nanoseconds, action))
            return id
        }
    }

    func cancel(_ timer: TimerID) {
        lock.withLock { s in s.due.removeAll { $0.0 == timer } }
    }

    /// Runs the timers set for "now" (delay 0); returns how many ran.
    @discardableResult
    func runImmediate() -> Int {
        let ready = lock.withLock { s in
            let ready = s.due.filter { $0.1 == 0 }
            s.due.removeAll { $0.1 == 0 }
            return ready
        }
        for (_, _, action) in ready { action() }
        return ready.count
    }
}

/// A driver connection the test plays by hand: reads and writes move random amounts, arming is
/// recorded and answered by the test's loop, as a driver's event thread would.
final class ScriptedConnection: Connection, @unchecked Sendable {
    var inbound: [UInt8] = []
    var outbound: [UInt8] = []
    var peerEnded = false
    var failure: SocketError.Reason?
    var readArmed = false
    var writeArmed = false
    var closed: Bool?
    var writeRoom = 0
    var rng: SeededGenerator

    init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if inbound.isEmpty {
            if let failure { return .failed(failure) }
            return peerEnded ? .endOfStream : .wouldBlock
        }
        let n = min(buffer.count, Int.random(in: 1...inbound.count, using: &rng))
        for i in 0..<n { buffer[i] = inbound[i] }
        inbound.removeFirst(n)
        return .bytes(n)
    }

    func write(_ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        if let failure { return .failed(failure) }
        let total = chunks.reduce(0) { $0 + $1.count }
        let n = min(total, writeRoom)
        guard n > 0 else { return .wouldBlock }
        var left = n
        for chunk in chunks where left > 0 {
            let take = min(left, chunk.count)
            outbound += chunk[0..<take]
            left -= take
        }
        writeRoom -= n
        return .bytes(n)
    }

    func armRead() { readArmed = true }
    func armWrite() { writeArmed = true }
    func shutdown(_ how: ShutdownHow) -> SocketError.Reason? { nil }
    func close(abortive: Bool) { closed = abortive }
    func localAddress() -> SocketAddress? { nil }
    func remoteAddress() -> SocketAddress? { nil }
    func apply(_ option: Option) -> SocketError.Reason? { nil }
}

/// Counts the socket-side callbacks.
final class CountingDelegate: ConnectionDelegate, @unchecked Sendable {
    var readable = 0
    var writable = 0
    func connectionReadable() { readable += 1 }
    func connectionWritable() { writable += 1 }
}

/// The TLS layer's pump (``TLSConnection``) against a server engine through a driver connection
/// that reads and writes random amounts, refuses writes at random, and delivers readiness late:
/// every byte arrives in order, ends are told apart, garbage is a typed alert, nothing hangs.
@Suite("TLS layer pump under random short reads and writes", .enabled(if: skipReason == nil, "\(skipReason ?? "")"))
struct GlueFuzzTests {
    enum Ending: String, CaseIterable, Sendable {
        /// The server sends close_notify, then the stream ends.
        case closeNotify
        /// The stream ends with no close_notify.
        case truncation
        /// Random bytes are injected into the stream from the server halfway.
        case garbage
        /// The driver connection resets halfway.
        case reset
    }

    struct Run: Sendable, CustomTestStringConvertible {
        var seed: UInt64
        var ending: Ending
        var testDescription: String { "seed \(seed), \(ending.rawValue)" }
    }

    static let runs: [Run] = (1...6).flatMap { seed in Ending.allCases.map { Run(seed: UInt64(seed) * 7919, ending: $0) } }

    @Test(arguments: runs)
    func pump(run: Run) throws {
        let pki = try TestPKI.get()
        var rng = SeededGenerator(seed: run.seed)
        let runtime = ManualRuntime()
        let clientEngine = try TLSEngine(
            context: TLSContext(.client(trustRoots: .file(pki.pem("ca")))), host: "localhost")
        let server = try TLSEngine(context: TLSContext(.server(
            certificateChainFile: pki.pem("localhost"), privateKeyFile: pki.key("localhost"))))
        let wire = ScriptedConnection(seed: run.seed ^ 0xA5A5)
        let tls = TLSConnection(engine: clientEngine, runtime: runtime)
        tls.attachInner(wire)
        let socket = CountingDelegate()

        /// The driver's event thread: readiness where armed and due; the network: bytes between
        /// the wire and the server engine, in random pieces.
        func network(serverData: inout ArraySlice<UInt8>, received: inout [UInt8], serverFailed: inout Bool) {
            wire.writeRoom += Int.random(in: 0...40_000, using: &rng)
            if !wire.outbound.isEmpty {
                let n = min(wire.outbound.count, server.inboundCapacity, Int.random(in: 1...30_000, using: &rng))
                if n > 0 {
                    server.receiveCiphertext(wire.outbound[0..<n])
                    wire.outbound.removeFirst(n)
                }
            }
            if !serverFailed {
                _ = try? server.handshake()
                while true {
                    guard let (bytes, _) = try? server.readPlaintext() else {
                        serverFailed = true
                        break
                    }
                    if bytes.isEmpty { break }
                    received += bytes
                }
                if server.state == .established, !serverData.isEmpty {
                    let n = Int.random(in: 1...min(serverData.count, 50_000), using: &rng)
                    let taken = (try? server.writePlaintext(serverData.prefix(n))) ?? 0
                    serverData.removeFirst(taken)
                }
            }
            wire.inbound += server.takeCiphertext()
            if wire.readArmed && (!wire.inbound.isEmpty || wire.peerEnded || wire.failure != nil) {
                wire.readArmed = false
                tls.connectionReadable()
            }
            if wire.writeArmed && wire.writeRoom > 0 {
                wire.writeArmed = false
                tls.connectionWritable()
            }
            runtime.runImmediate()
        }

        var toServer = ArraySlice(GlueFuzzTests.bytes(120_000, seed: run.seed))
        let toServerAll = Array(toServer)
        let fromServerAll = GlueFuzzTests.bytes(150_000, seed: run.seed + 1)
        var fromServer = ArraySlice(fromServerAll)
        var serverReceived: [UInt8] = []
        var clientReceived: [UInt8] = []
        var serverFailed = false

        // Handshake, as `handshake(timeout:)` steps it.
        var steps = 0
        handshake: while true {
            steps += 1
            #expect(steps < 10_000, "the handshake made no progress")
            if steps >= 10_000 { return }
            let step = tls.state.withLock { tls.handshakeStep(&$0) }
            switch step {
            case .done: break handshake
            case .failed(let error):
                Issue.record("handshake failed: \(error)")
                return
            case .wait: break
            }
            var none = ArraySlice<UInt8>()
            network(serverData: &none, received: &serverReceived, serverFailed: &serverFailed)
        }
        tls.attachOuter(socket)

        // Data both ways, the socket side reading and writing random amounts.
        var end: IOResult?
        var buffer = [UInt8](repeating: 0, count: 20_000)
        var rounds = 0
        let injectAt = fromServerAll.count / 2
        var injected = false
        while end == nil {
            rounds += 1
            if rounds > 200_000 {
                Issue.record("no end after \(rounds) rounds: \(clientReceived.count) bytes in")
                return
            }
            if !toServer.isEmpty {
                let n = Int.random(in: 1...min(toServer.count, 70_000), using: &rng)
                let result = toServer.prefix(n).withUnsafeBytes { tls.write([$0]) }
                if case .bytes(let written) = result { toServer.removeFirst(written) }
            }
            let want = Int.random(in: 1...buffer.count, using: &rng)
            let result = buffer.withUnsafeMutableBytes { tls.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want])) }
            switch result {
            case .bytes(let n): clientReceived += buffer[0..<n]
            case .wouldBlock: tls.armRead()
            case .endOfStream, .failed: end = result
            }
            network(serverData: &fromServer, received: &serverReceived, serverFailed: &serverFailed)
            if !injected && fromServer.count <= fromServerAll.count - injectAt {
                switch run.ending {
                case .garbage:
                    injected = true
                    wire.inbound += (0..<64).map { _ in UInt8.random(in: 0...255, using: &rng) }
                case .reset:
                    injected = true
                    wire.failure = .connectionReset
                default: break
                }
            }
            if fromServer.isEmpty && serverReceived.count == toServerAll.count && server.pendingCiphertextCount == 0
                && !wire.peerEnded
            {
                switch run.ending {
                case .closeNotify:
                    server.close()
                    wire.inbound += server.takeCiphertext()
                    wire.peerEnded = true
                case .truncation:
                    wire.peerEnded = true
                default: break
                }
            }
        }

        // Whatever the ending, what arrived is an exact prefix of what was sent, in order.
        #expect(clientReceived == Array(fromServerAll.prefix(clientReceived.count)), "client data out of order")
        #expect(serverReceived == Array(toServerAll.prefix(serverReceived.count)), "server data out of order")
        switch run.ending {
        case .closeNotify:
            #expect(end == .endOfStream)
            #expect(clientReceived == fromServerAll)
            #expect(serverReceived == toServerAll)
        case .truncation:
            #expect(end == .failed(.truncated))
            #expect(clientReceived == fromServerAll)
        case .garbage:
            guard case .failed(let reason)? = end else {
                Issue.record("garbage ended with \(String(describing: end))")
                return
            }
            let error = tls.error(for: reason)
            #expect(error.reason == .tlsAlert && error.alertOrigin == .generated, "got \(error)")
        case .reset:
            #expect(end == .failed(.connectionReset))
        }
        // The end repeats, and writes fail, once the stream is over.
        let again = buffer.withUnsafeMutableBytes { tls.read(into: $0) }
        if run.ending != .closeNotify { #expect(again == end) }
        // A graceful close after a clean end lets the close_notify out, then closes the wire.
        tls.close(abortive: false)
        for _ in 0..<100 where wire.closed == nil {
            wire.writeRoom += 10_000
            if wire.writeArmed {
                wire.writeArmed = false
                tls.connectionWritable()
            }
        }
        if run.ending == .closeNotify || run.ending == .truncation {
            #expect(wire.closed == false, "the wire was not closed gracefully")
        }
    }

    static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var g = SeededGenerator(seed: seed | 1)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
    }
}
