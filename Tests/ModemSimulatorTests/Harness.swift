import GenTCP
import GenTCPCore
import GenTCPModem
import GenTCPWire
import ModemSimulator
import Synchronization

/// A piece of the module's output, delivered to the harness process's mailbox.
struct Chunk: Sendable {
    let bytes: [UInt8]
}

struct HarnessTimeout: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for \(what)" }
}

struct CommandFailed: Error, CustomStringConvertible {
    let completion: ModemCompletion
    var description: String { "command failed: \(completion)" }
}

/// Drives a ``ModemSimulator`` with GenTCPModem's engine: the engine's output is the module's
/// input, the module's output (through this process's mailbox) the engine's input. Create and
/// use it inside one GenTCP process.
final class EngineHarness<D: ModemDialect>: @unchecked Sendable {
    var engine: ModemEngine<D>
    var modem: ModemSimulator!
    let runtime: any Runtime
    var completions: [ModemCompletion] = []
    var received: [Int: [UInt8]] = [:]
    var connected: Set<Int> = []
    var connectFailures: [Int: ModemReason] = [:]
    var closed: Set<Int> = []
    var available: Set<Int> = []
    var resets = 0
    var versions: [ModemVersion] = []
    var resolved: [ModemAddress] = []
    var resolveFailures: [ModemReason] = []
    var unrecognised: [String] = []
    var framingErrors = 0
    /// Every output fragment of the module, with its time on the runtime clock.
    var wire: [(UInt64, [UInt8])] = []
    var autoRead = true
    var readSize: Int
    private var readLink: Int?
    private var readGot = 0

    init(dialect: D, configuration: ModemSimulatorConfiguration, driver: any Driver,
         engineConfiguration: ModemConfiguration = ModemConfiguration()) {
        engine = ModemEngine(dialect: dialect, configuration: engineConfiguration)
        runtime = driver.runtime
        readSize = min(dialect.limits.maxReadLength, 1460)
        let me = Process.current
        modem = ModemSimulator(configuration, driver: driver) { bytes in me.send(Chunk(bytes: bytes)) }
    }

    var now: MillisecondInstant { MillisecondInstant(milliseconds: Int64(clamping: runtime.now / 1_000_000)) }

    func flush() {
        while engine.pendingOutputCount > 0 {
            var out: [UInt8] = []
            engine.withPendingOutput { raw in
                out = Array(raw)
                return raw.count
            }
            modem.input(out)
        }
    }

    /// Handles at most one arrival (or a timer), waiting up to `maxWait` ms.
    func step(maxWait: UInt64 = 1000) async {
        flush()
        startReadIfIdle()
        flush()
        var wait = maxWait
        if let deadline = engine.nextDeadline {
            wait = min(wait, UInt64(max(0, deadline.milliseconds(since: now))))
        }
        let message = try? await Process.receive(timeout: .milliseconds(Int(wait))) { m in
            if case .user(let v) = m { return v is Chunk }
            return false
        }
        if case .user(let value)? = message, let chunk = value as? Chunk {
            wire.append((runtime.now, chunk.bytes))
            chunk.bytes.withUnsafeBytes { raw in
                var cursor = 0
                while let event = engine.nextEvent(reading: raw, cursor: &cursor, now: now) { handle(event) }
            }
        } else {
            while let event = engine.nextEvent(now: now) { handle(event) }
        }
    }

    func handle(_ event: ModemEvent) {
        switch event {
        case .commandCompleted(let c):
            completions.append(c)
            if c.command == .read, let link = readLink {
                readLink = nil
                // Keep reading after a close notice: SIM800 and BG96 report the close first and
                // keep the data readable (docs/modem-behaviour.md SIM-12, BG-7).
                if c.outcome.isSuccess, readGot > 0 { available.insert(link) }
            }
        case .connected(let l): connected.insert(l)
        case .connectFailed(let l, let r): connectFailures[l] = r
        case .closed(let l):
            closed.insert(l)
        case .dataAvailable(let l, let n):
            if n != 0 { available.insert(l) }
        case .received(let l, let bytes):
            received[l, default: []].append(contentsOf: bytes)
            readGot += bytes.count
        case .resolved(let a): resolved.append(a)
        case .resolveFailed(let r): resolveFailures.append(r)
        case .version(let v): versions.append(v)
        case .moduleReset:
            resets += 1
            available = []
        case .unrecognisedLine:
            unrecognised.append(engine.withLastLine { String(decoding: $0.bytes, as: UTF8.self) })
        case .framingError: framingErrors += 1
        case .localAddress, .network, .status, .datagram: break
        }
    }

    func startReadIfIdle() {
        guard autoRead, engine.isIdle, let link = available.sorted().first else { return }
        available.remove(link)
        readLink = link
        readGot = 0
        do {
            try engine.submit(.read(link: link, maximum: readSize), now: now)
        } catch {
            readLink = nil
        }
    }

    func waitUntil(_ what: String, timeout: UInt64 = 30_000, _ done: () -> Bool) async throws {
        let limit = now.advanced(byMilliseconds: Int64(clamping: timeout)).milliseconds
        while !done() {
            if now.milliseconds > limit { throw HarnessTimeout(what: what) }
            await step(maxWait: 200)
        }
    }

    /// Boots the module and waits for its banner.
    func boot() async throws {
        modem.powerOn()
        try await waitUntil("the boot banner") { resets >= 1 }
    }

    /// Runs one command to its completion.
    @discardableResult
    func exec(_ command: ModemCommand, timeout: UInt64 = 60_000) async throws -> ModemCompletion {
        try await waitUntil("idle before \(command.kind)", timeout: timeout) { engine.isIdle }
        let before = completions.count
        try engine.submit(command, now: now)
        try await waitUntil("\(command.kind) to complete", timeout: timeout) { completions.count > before }
        return completions[before]
    }

    /// Runs a command that must succeed.
    func must(_ command: ModemCommand) async throws {
        let c = try await exec(command)
        if !c.outcome.isSuccess { throw CommandFailed(completion: c) }
    }

    /// Sends all of `data` on `link`, chunk by chunk.
    func send(_ data: [UInt8], link: Int) async throws {
        var offset = 0
        while offset < data.count {
            try await waitUntil("idle before send") { engine.isIdle }
            let before = completions.count
            let n = try data.withUnsafeBytes { raw throws(ModemError) in
                try engine.send(UnsafeRawBufferPointer(rebasing: raw[offset...]), link: link, now: now)
            }
            try await waitUntil("send to complete") { completions.count > before }
            let c = completions[before]
            if !c.outcome.isSuccess { throw CommandFailed(completion: c) }
            offset += n
        }
    }

    /// Connects `link` and waits for the outcome (asynchronous on cellular modules).
    func connect(link: Int, host: String, port: Int) async throws {
        try await must(.connect(link: link, host: host, port: port))
        try await waitUntil("connect result") { connected.contains(link) || connectFailures[link] != nil }
        if let r = connectFailures[link] { throw HarnessTimeout(what: "connect failed: \(r)") }
    }

    /// The init sequence each dialect's driver runs.
    func initialise() async throws {
        try await must(.probe)
        try await must(.echoOff)
        switch modem.configuration.dialect {
        case .espAT:
            try await must(.version)
            try await must(.enableMultiplexing)
            try await must(.enablePassiveReceive)
        case .sim800:
            // SIM-2..SIM-6: CIPMUX in IP INITIAL, then CSTT, CIICR, CIFSR before CIPSTART.
            try await must(.enableMultiplexing)
            try await must(.enablePassiveReceive)
            try await must(.configureBearer(apn: "internet", user: "", password: ""))
            try await must(.activateBearer)
            try await must(.localAddress)
        case .bg96:
            try await must(.configureBearer(apn: "internet", user: "", password: ""))
            try await must(.activateBearer)
        }
    }

    var wireBytes: [UInt8] { wire.flatMap { $0.1 } }
}

/// Test payloads: random bytes with the strings a naive parser trips on mixed in.
func trickyPayload(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    let specials = ["OK\r\n", "+IPD,0,5:", ">", "\r\nERROR\r\n", "0,CLOSED\r\n", "\r\nSEND OK\r\n", "+QIRD: 5\r\n",
                    "+CIPRXGET: 2,0,5,0\r\n", "\r\n+QIURC: \"closed\",0\r\n", "ready\r\n", "RDY\r\n", "busy p...\r\n"]
    var out: [UInt8] = []
    out.reserveCapacity(count + 64)
    while out.count < count {
        if next() % 3 == 0 {
            out.append(contentsOf: Array(specials[Int(next() % UInt64(specials.count))].utf8))
        } else {
            for _ in 0..<(1 + Int(next() % 48)) { out.append(UInt8(truncatingIfNeeded: next())) }
        }
    }
    return Array(out.prefix(count))
}

func sha(_ bytes: [UInt8]) -> String {
    var h = SHA256()
    h.update(bytes)
    return h.hexDigest()
}

/// What a test's peer saw, filled in by its process.
final class PeerRecord: Sendable {
    private let state = Mutex<(received: [UInt8], done: Bool, sent: Int, error: String?)>(([], false, 0, nil))
    var received: [UInt8] { state.withLock { $0.received } }
    var done: Bool { state.withLock { $0.done } }
    var sent: Int { state.withLock { $0.sent } }
    var error: String? { state.withLock { $0.error } }
    func add(_ bytes: [UInt8]) { state.withLock { $0.received += bytes } }
    func addSent(_ n: Int) { state.withLock { $0.sent += n } }
    func finish(_ error: String? = nil) { state.withLock { $0.done = true; $0.error = error } }
}

/// The peer of the transfer tests: reads exactly `expect` bytes, answers `reply`, closes.
func exchangePeer(_ listener: ListenSocket, expect: Int, reply: [UInt8], record: PeerRecord) async {
    do {
        let s = try await listener.accept()
        let got = try await s.recv(expect)
        record.add(got.bytes)
        try await s.send(reply)
        s.close()
        record.finish()
    } catch {
        record.finish("\(error)")
    }
}
