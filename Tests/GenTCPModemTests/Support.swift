import GenTCPCore
import GenTCPModem

/// Bytes of a transcript string (the tests' wire text is ASCII plus escapes).
func b(_ text: String) -> [UInt8] { Array(text.utf8) }

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

func at(_ ms: Int64) -> MillisecondInstant { MillisecondInstant(milliseconds: ms) }

/// ModemEvent with its views copied out, so tests can compare and print events.
enum Ev: Equatable, CustomStringConvertible {
    case completed(ModemCommandKind, Int?, ModemOutcome)
    case connected(Int)
    case connectFailed(Int, ModemReason)
    case closed(Int)
    case available(Int, Int?)
    case received(Int, String)
    case resolved(ModemAddress)
    case resolveFailed(ModemReason)
    case localAddress(ModemAddress)
    case version(ModemVersion)
    case network(ModemNetworkEvent)
    case status(ModemStatus)
    case reset
    case unrecognised(String)
    case framing(ATLexerError)
    case datagram(Int, Int, ModemEndpoint?)

    static func ok(_ kind: ModemCommandKind, _ link: Int? = nil) -> Ev { .completed(kind, link, .success) }
    static func failed(_ kind: ModemCommandKind, _ link: Int? = nil, _ failure: ModemFailure, _ reason: ModemReason) -> Ev {
        .completed(kind, link, .failure(failure, reason))
    }

    var description: String {
        switch self {
        case .completed(let k, let l, let o): "completed(\(k), \(l.map { "\($0)" } ?? "-"), \(o))"
        case .connected(let l): "connected(\(l))"
        case .connectFailed(let l, let r): "connectFailed(\(l), \(r.atom))"
        case .closed(let l): "closed(\(l))"
        case .available(let l, let n): "available(\(l), \(n.map { "\($0)" } ?? "-"))"
        case .received(let l, let s): "received(\(l), \(s.debugDescription))"
        case .resolved(let a): "resolved(\(a))"
        case .resolveFailed(let r): "resolveFailed(\(r.atom))"
        case .localAddress(let a): "localAddress(\(a))"
        case .version(let v): "version(\(v.major).\(v.minor).\(v.patch).\(v.build))"
        case .network(let e): "network(\(e))"
        case .status(let st): "status(\(st))"
        case .reset: "reset"
        case .unrecognised(let s): "unrecognised(\(s.debugDescription))"
        case .framing(let e): "framing(\(e))"
        case .datagram(let l, let n, let r): "datagram(\(l), \(n), \(r.map { "\($0.address):\($0.port)" } ?? "-"))"
        }
    }
}

func ipv4(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32) -> ModemAddress { .ipv4(a << 24 | b << 16 | c << 8 | d) }

/// Copies an event out of the engine (reading the last line when needed).
func normalise<D: ModemDialect>(_ event: ModemEvent, _ engine: ModemEngine<D>) -> Ev {
    switch event {
    case .commandCompleted(let c): return .completed(c.command, c.link, c.outcome)
    case .connected(let l): return .connected(l)
    case .connectFailed(let l, let r): return .connectFailed(l, r)
    case .closed(let l): return .closed(l)
    case .dataAvailable(let l, let n): return .available(l, n)
    case .received(let l, let bytes): return .received(l, String(decoding: bytes, as: UTF8.self))
    case .resolved(let a): return .resolved(a)
    case .resolveFailed(let r): return .resolveFailed(r)
    case .localAddress(let a): return .localAddress(a)
    case .version(let v): return .version(v)
    case .network(let e): return .network(e)
    case .status(let st): return .status(st)
    case .moduleReset: return .reset
    case .unrecognisedLine: return .unrecognised(engine.withLastLine { String(decoding: $0.bytes, as: UTF8.self) })
    case .framingError(let e): return .framing(e)
    case .datagram(let l, let n, let r): return .datagram(l, n, r)
    }
}

/// Merges consecutive `received` pieces of one link: pieces follow the input's cuts, the
/// stream does not.
func merged(_ events: [Ev]) -> [Ev] {
    var out: [Ev] = []
    for e in events {
        if case .received(let l, let s) = e, case .received(let l0, let s0)? = out.last, l0 == l {
            out[out.count - 1] = .received(l, s0 + s)
        } else {
            out.append(e)
        }
    }
    return out
}

/// One step of a scripted session.
enum Step {
    /// The driver submits a command.
    case submit(ModemCommand)
    /// The driver sends data.
    case send(String, link: Int)
    /// The driver sends one datagram (to the link's remote when `to` is nil).
    case sendDatagram(String, link: Int, to: ModemEndpoint?)
    /// The driver uploads a file (Quectel `AT+QFUPL`).
    case upload(String, name: String, link: Int)
    /// The module sends these bytes.
    case modem(String)
    /// The module sends these raw bytes.
    case modemBytes([UInt8])
    /// Time passes.
    case wait(Int64)
}

/// A deterministic generator (SplitMix64), so a failing chunking replays.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
}

/// How a test cuts the module's bytes.
enum Chunking {
    case whole
    case bytes
    case splitAt(Int)  // one cut, counted over all modem bytes of the session
    case random(UInt64)

    func cut(_ bytes: [UInt8], offset: Int, rng: inout SplitMix) -> [[UInt8]] {
        switch self {
        case .whole: return [bytes]
        case .bytes: return bytes.map { [$0] }
        case .splitAt(let at):
            let local = at - offset
            guard local > 0, local < bytes.count else { return [bytes] }
            return [Array(bytes[..<local]), Array(bytes[local...])]
        case .random:
            var out: [[UInt8]] = []
            var i = 0
            while i < bytes.count {
                let n = 1 + rng.below(min(17, bytes.count - i))
                out.append(Array(bytes[i..<(i + n)]))
                i += n
            }
            return out
        }
    }
}

/// The result of running a session.
struct Session {
    var events: [Ev] = []
    var written = ""
    var errors: [ModemError] = []
}

/// Runs `steps` against a fresh engine. Modem bytes are cut per `chunking`; after each chunk
/// the driver writes all pending output (as a driver would).
func run<D: ModemDialect>(_ dialect: D, _ steps: [Step], chunking: Chunking = .whole,
                          configuration: ModemConfiguration = ModemConfiguration(),
                          inspect: ((ModemEngine<D>) -> Void)? = nil) -> (Session, ModemEngine<D>) {
    var engine = ModemEngine(dialect: dialect, configuration: configuration)
    var session = Session()
    var now: Int64 = 0
    var offset = 0
    var rng = SplitMix(state: { if case .random(let s) = chunking { return s } else { return 1 } }())
    func flush() {
        engine.withPendingOutput { bytes in
            session.written += String(decoding: bytes, as: UTF8.self)
            return bytes.count
        }
    }
    func drain(_ input: [UInt8]) {
        input.withUnsafeBytes { raw in
            var cursor = 0
            while let event = engine.nextEvent(reading: raw, cursor: &cursor, now: at(now)) {
                session.events.append(normalise(event, engine))
                if let violation = engine.invariantViolation() { fatalError("invariant: \(violation)") }
            }
            precondition(cursor == raw.count)
        }
        flush()
    }
    for step in steps {
        switch step {
        case .submit(let command):
            do throws(ModemError) { try engine.submit(command, now: at(now)) } catch { session.errors.append(error) }
            flush()
            drain([])
        case .send(let payload, let link):
            do throws(ModemError) { try engine.send(b(payload), link: link, now: at(now)) } catch { session.errors.append(error) }
            flush()
        case .upload(let payload, let name, let link):
            var failure: ModemError?
            b(payload).withUnsafeBytes { raw in
                do throws(ModemError) {
                    try engine.upload(raw, link: link, name: name, now: at(now))
                } catch { failure = error }
            }
            if let failure { session.errors.append(failure) }
            flush()
        case .sendDatagram(let payload, let link, let to):
            var failure: ModemError?
            b(payload).withUnsafeBytes { raw in
                do throws(ModemError) {
                    try engine.sendDatagram(raw, link: link, to: to, now: at(now))
                } catch { failure = error }
            }
            if let failure { session.errors.append(failure) }
            flush()
        case .modem(let s):
            for chunk in chunking.cut(b(s), offset: offset, rng: &rng) { drain(chunk) }
            offset += b(s).count
        case .modemBytes(let bytes):
            for chunk in chunking.cut(bytes, offset: offset, rng: &rng) { drain(chunk) }
            offset += bytes.count
        case .wait(let ms):
            now += ms
            while let event = engine.nextEvent(now: at(now)) { session.events.append(normalise(event, engine)) }
            flush()
        }
        inspect?(engine)
    }
    session.events = merged(session.events)
    return (session, engine)
}

/// The number of modem bytes in a session.
func modemByteCount(_ steps: [Step]) -> Int {
    steps.reduce(0) { total, step in
        switch step {
        case .modem(let s): total + b(s).count
        case .modemBytes(let bytes): total + bytes.count
        default: total
        }
    }
}

/// Every chunking a transcript test tries: whole, byte by byte, every single cut point, and
/// twenty seeded random cuttings.
func chunkings(for steps: [Step]) -> [Chunking] {
    var all: [Chunking] = [.whole, .bytes]
    let n = modemByteCount(steps)
    if n > 1 { for i in 1..<n { all.append(.splitAt(i)) } }
    for seed in 1...20 { all.append(.random(UInt64(seed))) }
    return all
}
