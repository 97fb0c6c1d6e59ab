import GenTCP
import GenTCPCore
import GenTCPModem
import GenTCPPOSIX
import GenTCPSim
import ModemSimulator
import Testing

/// Which engine dialect drives which simulated module.
enum Kind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case espOld, espNew, sim800, bg96
    var testDescription: String { rawValue }

    func configuration(seed: UInt64 = 1, faults: ModemFaults = .none) -> ModemSimulatorConfiguration {
        switch self {
        case .espOld: return .espAT(firmware: "2.2.0.0", seed: seed, faults: faults)
        case .espNew: return .espAT(firmware: "3.3.0.0", seed: seed, faults: faults)
        case .sim800: return .sim800(seed: seed, faults: faults)
        case .bg96: return .bg96(seed: seed, faults: faults)
        }
    }
}

/// Runs `body` with an engine of the right dialect for `kind`.
func withHarness<R: Sendable>(
    _ kind: Kind, seed: UInt64 = 1, faults: ModemFaults = .none, driver: any Driver,
    _ body: @escaping @Sendable (any HarnessBox) async throws -> R
) async throws -> R {
    switch kind {
    case .espOld, .espNew:
        let h = EngineHarness(dialect: ESPATDialect(), configuration: kind.configuration(seed: seed, faults: faults), driver: driver)
        return try await body(h)
    case .sim800:
        let h = EngineHarness(dialect: SIM800Dialect(), configuration: kind.configuration(seed: seed, faults: faults), driver: driver)
        return try await body(h)
    case .bg96:
        let h = EngineHarness(dialect: BG96Dialect(), configuration: kind.configuration(seed: seed, faults: faults), driver: driver)
        return try await body(h)
    }
}

/// The dialect-independent face of a harness.
protocol HarnessBox: AnyObject, Sendable {
    var modem: ModemSimulator! { get }
    var received: [Int: [UInt8]] { get }
    var closed: Set<Int> { get }
    var resets: Int { get }
    var autoRead: Bool { get set }
    var resolved: [ModemAddress] { get }
    var completions: [ModemCompletion] { get }
    var framingErrors: Int { get }
    var wireBytes: [UInt8] { get }
    var wire: [(UInt64, [UInt8])] { get }
    var now: MillisecondInstant { get }
    func boot() async throws
    func initialise() async throws
    func connect(link: Int, host: String, port: Int) async throws
    func send(_ data: [UInt8], link: Int) async throws
    @discardableResult func exec(_ command: ModemCommand, timeout: UInt64) async throws -> ModemCompletion
    func must(_ command: ModemCommand) async throws
    func waitUntil(_ what: String, timeout: UInt64, _ done: () -> Bool) async throws
}

extension EngineHarness: HarnessBox {}

/// Boot, init, connect, 64 KiB each way byte-exact, peer close after the data.
func transfer(_ h: any HarnessBox, host: String, port: Int, record: PeerRecord,
              upload: [UInt8], download: [UInt8], link: Int = 1) async throws {
    try await h.boot()
    try await h.initialise()
    try await h.connect(link: link, host: host, port: port)
    try await h.send(upload, link: link)
    try await h.waitUntil("download and close", timeout: 600_000) {
        h.closed.contains(link) && (h.received[link]?.count ?? 0) >= download.count
    }
    #expect(h.received[link]?.count == download.count)
    #expect(sha(h.received[link] ?? []) == sha(download))
    try await h.waitUntil("peer", timeout: 10_000) { record.done }
    #expect(record.error == nil)
    #expect(sha(record.received) == sha(upload))
    #expect(h.framingErrors == 0)
    if h.modem.configuration.dialect == .bg96 {
        // The id stays taken after "closed" until AT+QICLOSE.
        #expect(h.modem.isLinkInUse(link))
        try await h.must(.close(link: link))
    }
    #expect(!h.modem.isLinkInUse(link))
}

@Suite("Transfers through the engine")
struct TransferTests {
    static let upload = trickyPayload(64 * 1024, seed: 11)
    static let download = trickyPayload(64 * 1024, seed: 22)

    @Test("64 KiB each way over loopback (posix)", arguments: Kind.allCases)
    func posixTransfer(kind: Kind) async throws {
        let listener = try ListenSocket.listen(
            port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: .posix)
        let port = try listener.port()
        let record = PeerRecord()
        Process.spawn { await exchangePeer(listener, expect: Self.upload.count, reply: Self.download, record: record) }
        try await Process.run {
            try await withHarness(kind, driver: POSIXDriver.posix) { h in
                try await transfer(h, host: "127.0.0.1", port: port, record: record,
                                   upload: Self.upload, download: Self.download)
            }
        }
        listener.close()
    }

    @Test("64 KiB each way on the simulated network", arguments: Kind.allCases)
    func simTransfer(kind: Kind) async throws {
        let net = try SimNetwork(seed: 5)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem")
        try await net.run {
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(net, host: server))
            let record = PeerRecord()
            net.spawn { await exchangePeer(listener, expect: Self.upload.count, reply: Self.download, record: record) }
            try await withHarness(kind, driver: try SimDriver.sim(net, host: modemHost)) { h in
                try await transfer(h, host: "server", port: 7000, record: record,
                                   upload: Self.upload, download: Self.download)
            }
        }
    }

    @Test("Fragmented, noisy, paced output gives the same bytes", arguments: Kind.allCases)
    func faultyTransfer(kind: Kind) async throws {
        let faults = ModemFaults(maxFragmentLength: 9, maxFragmentDelay: .microseconds(300), noiseProbability: 0.2,
                                 baudRate: 921_600,
                                 spuriousBusyProbability: kind == .espOld || kind == .espNew ? 0.05 : 0)
        let net = try SimNetwork(seed: 6)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem")
        let upload = trickyPayload(16 * 1024, seed: 33)
        let download = trickyPayload(16 * 1024, seed: 44)
        try await net.run {
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(net, host: server))
            let record = PeerRecord()
            net.spawn { await exchangePeer(listener, expect: upload.count, reply: download, record: record) }
            try await withHarness(kind, seed: 99, faults: faults, driver: try SimDriver.sim(net, host: modemHost)) { h in
                try await transfer(h, host: "server", port: 7000, record: record, upload: upload, download: download)
                #expect(h.modem.statistics.noiseInserted > 0)
                #expect(h.wire.count > 1000)
            }
        }
    }
}
