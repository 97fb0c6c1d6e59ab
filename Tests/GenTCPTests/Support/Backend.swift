import GenTCP
import GenTCPModem
import GenTCPCore
import GenTCPPOSIX
import GenTCPSerial
import GenTCPAT
import GenTCPSLIP
import GenTCPSim
import ModemSimulator
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One way of running the conformance suite: a pair of drivers (client side, server/peer side),
/// the runtime they share, and the addresses the client reaches the server at.
///
/// Every conformance test is `@Test(arguments: Backend.all)` and runs its body with
/// ``run(_:)``, which starts the body as a GenTCP process on the backend's runtime. Everything a
/// test does (sockets, helper processes, sleeps, timing) goes through the ``TestContext`` it gets,
/// so a backend with a virtual clock (the simulator) runs the same body unchanged.
struct Backend: Sendable, CustomTestStringConvertible {
    /// `posix`, `sim`, ...
    let name: String
    /// Why this backend cannot run IPv6 cases, or nil when it can.
    let ipv6Unavailable: String?
    /// Cases this backend cannot run: (display-name prefix, why). They are cancelled, with the reason.
    let skips: [(prefix: String, reason: String)]
    /// Builds a fresh environment and runs `body` inside it, as a GenTCP process.
    private let runner: @Sendable (_ body: @escaping @Sendable (TestContext) async throws -> Void) async throws -> Void

    init(
        name: String, ipv6Unavailable: String? = nil, skips: [(prefix: String, reason: String)] = [],
        runner: @escaping @Sendable (_ body: @escaping @Sendable (TestContext) async throws -> Void) async throws -> Void
    ) {
        self.name = name
        self.ipv6Unavailable = ipv6Unavailable
        self.skips = skips
        self.runner = runner
    }

    var testDescription: String { name }

    /// Runs `body` as a process on this backend. Holds the shared side of ``ExclusivityGate`` so
    /// that tests that measure the whole program (resident memory) can run alone.
    func run(_ body: @escaping @Sendable (TestContext) async throws -> Void) async throws {
        _ = ignoreBrokenPipes
        if let name = Test.current?.displayName ?? Test.current?.name,
           let skip = skips.first(where: { name.hasPrefix($0.prefix) }) {
            try Test.cancel(Comment(rawValue: skip.reason))
        }
        await ExclusivityGate.shared.acquireShared()
        do {
            try await runner(body)
        } catch {
            await ExclusivityGate.shared.releaseShared()
            throw error
        }
        await ExclusivityGate.shared.releaseShared()
    }

    /// The posix driver the tests use: names from /etc/hosts only (OTP's
    /// `inet_db:set_lookup([file])`), so no test sends a DNS query off the machine.
    static let posixDriver = POSIXDriver(lookup: .hostsFile())

    /// BSD sockets over the loopback interface, real clock; names from /etc/hosts only.
    static let posix = loopback("posix", driver: posixDriver)

    /// The posix driver with every process of the test on ``EventLoopRuntime/shared``: the event
    /// loop's thread runs them between its waits for readiness.
    static let posixLoopDriver = POSIXDriver(runtime: EventLoopRuntime.shared, lookup: .hostsFile())

    /// As ``posix``, with the test body and every process it starts on the event loop.
    static let posixLoop = loopback("posix-loop", driver: posixLoopDriver)

    /// A backend of `driver` on 127.0.0.1 (and ::1 where the host has it), the body run as a
    /// process on the driver's runtime.
    private static func loopback(_ name: String, driver: POSIXDriver) -> Backend {
        Backend(name: name, ipv6Unavailable: Loopback.ipv6Available ? nil : "::1 is not available on this host") { body in
            let context = TestContext(
                backend: name,
                clientDriver: driver,
                serverDriver: driver,
                serverHost: "127.0.0.1",
                serverAddress: .loopbackV4,
                clientAddress: .loopbackV4,
                serverHostName: "localhost",
                ipv6: Loopback.ipv6Available ? .init(serverHost: "::1", serverAddress: .loopbackV6, clientAddress: .loopbackV6) : nil)
            try await Process.run(runtime: context.runtime) { try await body(context) }
        }
    }

    /// A fresh simulated network per test: hosts `server` (10.0.0.1, fd00::1) and `client`
    /// (10.0.0.2, fd00::2), 1 ms apart, no faults, on the network's virtual clock. These addresses
    /// exist only inside the simulator (loopback addresses are reserved there); nothing reaches
    /// the OS. Everything of a sim test runs inside `run`, as the simulator requires.
    static let sim = Backend(name: "sim") { body in
        let net = try SimNetwork(seed: 1)
        let server = try net.addHost("server")
        let client = try net.addHost("client")
        let context = TestContext(
            backend: "sim",
            clientDriver: try SimDriver(network: net, host: client),
            serverDriver: try SimDriver(network: net, host: server),
            serverHost: .address(server.addresses[0]),
            serverAddress: server.addresses[0],
            clientAddress: client.addresses[0],
            serverHostName: server.name,
            ipv6: .init(serverHost: .address(server.addresses[1]), serverAddress: server.addresses[1],
                        clientAddress: client.addresses[1]))
        try await net.run { try await body(context) }
    }

    /// What an AT module cannot do, whatever its dialect: the cases are cancelled with the reason.
    static let atSkips: [(prefix: String, reason: String)] = [
        ("A1 ", "the module reports no local port"), ("A8 ", "the module chooses the local port"),
        ("J73", "the module reports no local port"),
        ("B20", "data comes from the module in read-sized pieces; recv(0) returns what has arrived"),
        ("C23", "modules report CLOSED only: no RST, no half-open link"), ("C31", "modules report no RST"),
        ("C32", "modules report no RST"), ("C33", "modules report no RST"), ("C34", "modules report no RST"),
        ("C38", "a peer close frees the module's link: no writing after FIN"),
        ("G63", "modules report no RST"), ("E4", "modules have no half-close: shutdown is enotsup"), ("E5", "modules have no half-close: shutdown is enotsup"),
        ("E shutdown", "modules have no half-close: shutdown is enotsup"),
        ("D44", "send_timeout timing over a paced serial line differs"),
        // gen_udp
        ("U5 ", "the modules' send commands cannot carry an empty datagram (a length of 0 is refused or is a query): enotsup"),
        ("U44", "the modules report no ICMP errors"), ("U45", "the modules report no ICMP errors"),
    ]

    /// What a SIM800 cannot do with gen_udp besides: its UDP links are connected (SIM-U1), so a
    /// socket sends only to the peer it is connected to and receives only once connected.
    static let sim800UDPSkips: [(prefix: String, reason: String)] = [
        "U4 ", "U6 ", "U7 ", "U8 ", "U9 ", "U11", "U12", "U14", "U15", "U20", "U21", "U22", "U24", "U27", "U28",
        "U29", "U41", "U43", "U46", "U47", "U48",
    ].map { ($0, "SIM800 UDP links are connected: a socket sends only to its connected peer (enotsup otherwise) "
              + "and receives nothing before connect or after disconnect") }

    /// The client on an AT module (the modem simulator in `dialect`, on a 921600-baud MemoryLink,
    /// its output cut into random fragments with URC noise between messages) whose links reach
    /// the simulated network's `server`; the peer is a sim socket on `server`.
    ///
    /// The module's host on the network has the address the module reports (`AT+CIFSR`,
    /// `AT+QIACT?`), so a peer reaches a UDP socket at the module's own address and port.
    static func at(_ name: String, _ dialect: ATDialect, _ simulator: ModemSimulatorConfiguration) -> Backend {
        let skips = atSkips + (dialect == .sim800 ? sim800UDPSkips : [])
        return Backend(name: name, ipv6Unavailable: "the modem's links are IPv4", skips: skips) { body in
            let net = try SimNetwork(seed: 1)
            let server = try net.addHost("server")
            let moduleAddress = IPAddress(simulator.localAddress) ?? .v4(0xC0A8_0402)
            let modemHost = try net.addHost("modem", addresses: [moduleAddress, .v6(0xFD00, 0, 0, 0, 0, 0, 0, 2)])
            try await net.run {
                let (host, module) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 921_600), runtime: net.runtime)
                let bridge = ModemLinkBridge(link: module, configuration: simulator,
                                             driver: try SimDriver(network: net, host: modemHost))
                bridge.modem.powerOn()
                let at = ATDriver(link: host, configuration: ATConfiguration(dialect: dialect, apn: "internet"),
                                  runtime: net.runtime)
                at.start()
                defer { at.stop(); bridge.close() }
                while !at.isReady { await net.sleep(for: .milliseconds(5)) }
                let context = TestContext(
                    backend: name,
                    clientDriver: at,
                    serverDriver: try SimDriver(network: net, host: server),
                    serverHost: .address(server.addresses[0]),
                    serverAddress: server.addresses[0],
                    clientAddress: moduleAddress,
                    serverHostName: server.name,
                    ipv6: nil)
                try await body(context)
            }
        }
    }

    /// Output fragmented (1...64 bytes) with URC noise before 5% of messages.
    static let modemFaults = ModemFaults(maxFragmentLength: 64, noiseProbability: 0.05)

    static let atESP = at("at-esp-at", .espAT, .espAT(firmware: "3.3.0.0", seed: 3, faults: modemFaults))
    static let atSIM800 = at("at-sim800", .sim800, .sim800(seed: 4, faults: modemFaults))
    static let atBG96 = at("at-bg96", .bg96, .bg96(seed: 5, faults: modemFaults))

    /// What the slip driver cannot do: the cases are cancelled, with the reason.
    /// The line carries 92160 bytes/s (921600 baud, 8N1) less SLIP framing and 40 header bytes
    /// per 966-byte segment (MTU 1006): about 87 KB/s of payload. Cases that assume more are
    /// cancelled; everything else a TCP stack does runs.
    static let slipSkips: [(prefix: String, reason: String)] = [
        ("B22", "8192 bytes take about 94 ms on a 921600-baud line; the case activates after 50 ms, when only "
            + "four 966-byte segments have arrived, so later messages are segment-sized, not 1460"),
        ("D44 send_timeout counts time without progress",
         "16 MiB take over 3 minutes on a 921600-baud line, and the reader's exact recv of 256 KiB with a "
            + "2 s timeout needs about 3 s of line time"),
    ]

    /// The client on our ``SLIPDriver`` (10.0.0.2, GenTCP's own TCP/IP stack) at one end of a
    /// 921600-baud MemoryLink; at the other end a second `SLIPDriver` plays the board (10.0.0.1,
    /// named `board`) and holds P and L. Both stacks, the line's pacing and every timer run on
    /// the virtual clock of a `SimNetwork` (no hosts on it), so a run replays exactly.
    static let slip = Backend(name: "slip", ipv6Unavailable: "SLIP carries IPv4 only", skips: slipSkips) { body in
        let net = try SimNetwork(seed: 1)
        // 32 KiB send and receive buffers on both stacks (the driver's default is 16 KiB): K78
        // echoes 70000 bytes through a peer that only reads while it can write, which needs more
        // than the 64 KiB that four 16 KiB buffers hold (a kernel's buffers are larger still).
        var tcp = SLIPConfiguration.defaultTCP
        tcp.sendBufferSize = 32768
        tcp.receiveBufferSize = 32768
        let board = IPAddress(10, 0, 0, 1)
        let host = IPAddress(10, 0, 0, 2)
        let (hostLink, boardLink) = try MemoryLink.pair(
            configuration: SerialConfiguration(baudRate: 921_600), runtime: net.runtime,
            names: ("memory:host", "memory:board"))
        let client = try SLIPDriver(
            link: hostLink,
            configuration: SLIPConfiguration(local: host, peer: board, peerName: "board",
                                             seed: 1, tcp: tcp),
            runtime: net.runtime)
        let server = try SLIPDriver(
            link: boardLink,
            configuration: SLIPConfiguration(local: board, peer: host, peerName: "host",
                                             seed: 2, tcp: tcp),
            runtime: net.runtime)
        defer { client.close(); server.close() }
        let context = TestContext(
            backend: "slip",
            clientDriver: client,
            serverDriver: server,
            serverHost: .address(board),
            serverAddress: board,
            clientAddress: host,
            serverHostName: "board",
            ipv6: nil)
        try await net.run { try await body(context) }
    }

    /// Every backend the conformance suite runs against, or those named (comma-separated) in
    /// `GENTCP_BACKENDS`, e.g. `GENTCP_BACKENDS=posix,sim` (`swift test --filter` cannot select
    /// a test's arguments; tools/sanitize.sh uses this to run one backend's conformance cases).
    static let all: [Backend] = {
        let every: [Backend] = [.posix, .posixLoop, .sim, .atESP, .atSIM800, .atBG96, .slip]
        guard let value = getenv("GENTCP_BACKENDS") else { return every }
        let names = String(cString: value).split(separator: ",").map { String($0) }
        guard !names.isEmpty else { return every }
        return every.filter { names.contains($0.name) }
    }()
}

/// What a conformance test body gets: drivers, addresses, and the runtime-aware helpers.
struct TestContext: Sendable {
    struct IPv6: Sendable {
        /// What C connects to.
        var serverHost: Host
        /// The address `peername(C)` reports.
        var serverAddress: IPAddress
        /// The address `sockname(C)` reports.
        var clientAddress: IPAddress
    }

    let backend: String
    /// The driver for C, the client under test.
    let clientDriver: any Driver
    /// The driver for P and L, the peer and its listener.
    let serverDriver: any Driver
    /// What C connects to (127.0.0.1 on posix).
    let serverHost: Host
    /// The address `peername(C)` reports.
    let serverAddress: IPAddress
    /// The address `sockname(C)` reports.
    let clientAddress: IPAddress
    /// A host name that resolves to ``serverAddress`` (`localhost` on posix), if the backend has one.
    let serverHostName: String?
    /// IPv6 addresses of the server, when the backend has IPv6 (::1 on posix).
    let ipv6: IPv6?

    /// The clock of both drivers.
    var runtime: any Runtime { clientDriver.runtime }

    /// Now, in nanoseconds of the backend's clock.
    var now: UInt64 { runtime.now }

    /// Milliseconds elapsed since `start` (a value of ``now``).
    func elapsedMilliseconds(since start: UInt64) -> Double {
        Double(runtime.now &- start) / 1_000_000
    }

    /// Sleeps on the backend's clock (virtual time on the simulator).
    func sleep(_ milliseconds: Int) async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            _ = runtime.schedule(afterNanoseconds: UInt64(milliseconds) * 1_000_000) { c.resume() }
        }
    }

    /// Waits, in steps of 5 ms on the backend's clock, until `condition` holds; false when it
    /// still does not after `limit` ms (a limit for a bug, not a measure). For a step that must
    /// follow another process's progress (a `recv` that is waiting) instead of guessing how long
    /// that takes on a busy machine.
    func waitUntil(limit milliseconds: Int = 20_000, _ condition: () -> Bool) async -> Bool {
        var waited = 0
        while !condition() {
            if waited >= milliseconds { return false }
            await sleep(5)
            waited += 5
        }
        return true
    }

    /// Starts a helper process on the backend's runtime; its result is read with
    /// ``Spawned/value(within:)``.
    @discardableResult
    func spawn<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> Spawned<T> {
        let outcome = Outcome<T>()
        let process = Process.spawn(runtime: runtime) {
            do {
                let value = try await body()
                outcome.set(.success(value))
            } catch {
                outcome.set(.failure(error))
                throw error
            }
        }
        return Spawned(process: process, outcome: outcome, context: self)
    }

    /// Waits for `process` to exit, at most `milliseconds`; nil when it is still running.
    func waitForExit(_ process: Process, within milliseconds: Int = 30_000) async -> ExitReason? {
        let once = OnceContinuation<ExitReason?>()
        return await withUnsafeContinuation { (c: UnsafeContinuation<ExitReason?, Never>) in
            once.install(c)
            let timer = runtime.schedule(afterNanoseconds: UInt64(milliseconds) * 1_000_000) { once.resume(nil) }
            Task(executorPreference: runtime.executor) { [runtime] in
                let reason = await process.waitForExit()
                runtime.cancel(timer)
                once.resume(reason)
            }
        }
    }

    /// Options that make a listener bind the server's address (never the wildcard address).
    var bindServer: [Option] { [.localAddress(serverAddress)] }

    /// L: a listener on an ephemeral port of the server, P's defaults: binary and passive.
    func listen(_ options: [Option] = [.binary, .active(.passive)]) throws -> ListenSocket {
        try ListenSocket.listen(port: 0, options: bindServer + options, driver: serverDriver)
    }

    /// Connects C to `port` on the server.
    func connect(port: Int, _ options: [Option], timeout: Timeout = 2000) async throws(SocketError) -> Socket {
        try await Socket.connect(serverHost, port: port, options: options, timeout: timeout, driver: clientDriver)
    }

    /// C and P: C connected with `client` options, P accepted (owned by the caller) from a
    /// listener with `server` options. The listener is closed once P is accepted.
    func pair(
        client: [Option] = [.binary, .active(.passive)],
        server: [Option] = [.binary, .active(.passive)]
    ) async throws -> (c: Socket, p: Socket) {
        let l = try listen(server)
        defer { l.close() }
        let c = try await connect(port: try l.port(), client)
        let p = try await l.accept(timeout: 2000)
        return (c, p)
    }

    /// A loopback port on the server with nobody listening (bound, then closed).
    func unusedPort(ipv6: Bool = false) throws -> Int {
        let address = ipv6 ? (self.ipv6?.serverAddress ?? serverAddress) : serverAddress
        let l = try ListenSocket.listen(port: 0, options: [.localAddress(address)], driver: serverDriver)
        let port = try l.port()
        l.close()
        return port
    }
}

/// A helper process and its eventual result.
struct Spawned<T: Sendable>: Sendable {
    let process: Process
    let outcome: Outcome<T>
    let context: TestContext

    /// The body's result, waiting at most `milliseconds` for the process to finish.
    func value(within milliseconds: Int = 30_000) async throws -> T {
        guard await context.waitForExit(process, within: milliseconds) != nil else {
            throw TestFailure("helper process \(process) still running after \(milliseconds) ms")
        }
        guard let result = outcome.get() else { throw TestFailure("helper process \(process) left no result") }
        return try result.get()
    }
}

final class Outcome<T: Sendable>: Sendable {
    private let box = Mutex<Result<T, any Error>?>(nil)
    func set(_ r: Result<T, any Error>) { box.withLock { $0 = r } }
    func get() -> Result<T, any Error>? { box.withLock { $0 } }
}

/// A continuation resumed by whichever of several events comes first; later ones are ignored.
final class OnceContinuation<T: Sendable>: Sendable {
    private struct State {
        var continuation: UnsafeContinuation<T, Never>?
        var finished = false
        var hasEarly = false
        var early: T?
    }
    private let state = Mutex(State())

    func install(_ c: UnsafeContinuation<T, Never>) {
        let early: T? = state.withLock { s in
            guard s.hasEarly else { s.continuation = c; return nil }
            s.finished = true
            return s.early
        }
        if let early { c.resume(returning: early) }
    }

    func resume(_ value: T) {
        let c: UnsafeContinuation<T, Never>? = state.withLock { s in
            if s.finished || s.hasEarly { return nil }
            if let c = s.continuation {
                s.continuation = nil
                s.finished = true
                return c
            }
            s.hasEarly = true
            s.early = value
            return nil
        }
        c?.resume(returning: value)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ text: String) { description = text }
}

/// A readers/writer gate: conformance tests hold it shared; tests that measure the whole
/// program (its resident memory) hold it exclusively so no other test allocates meanwhile.
actor ExclusivityGate {
    static let shared = ExclusivityGate()

    private var readers = 0
    private var writer = false
    private var waitingReaders: [CheckedContinuation<Void, Never>] = []
    private var waitingWriters: [CheckedContinuation<Void, Never>] = []

    func acquireShared() async {
        if !writer && waitingWriters.isEmpty {
            readers += 1
            return
        }
        await withCheckedContinuation { waitingReaders.append($0) }
    }

    func releaseShared() {
        readers -= 1
        if readers == 0 { wakeWriter() }
    }

    func acquireExclusive() async {
        if !writer && readers == 0 {
            writer = true
            return
        }
        await withCheckedContinuation { waitingWriters.append($0) }
    }

    func releaseExclusive() {
        writer = false
        if !wakeWriter() {
            let woken = waitingReaders
            waitingReaders = []
            readers += woken.count
            for c in woken { c.resume() }
        }
    }

    /// Hands the gate to the first waiting writer (ownership is transferred before resuming).
    @discardableResult
    private func wakeWriter() -> Bool {
        guard !writer, readers == 0, !waitingWriters.isEmpty else { return false }
        writer = true
        waitingWriters.removeFirst().resume()
        return true
    }

    /// Runs `body` with no conformance test running.
    static func exclusively<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await shared.acquireExclusive()
        do {
            let value = try await body()
            await shared.releaseExclusive()
            return value
        } catch {
            await shared.releaseExclusive()
            throw error
        }
    }
}
