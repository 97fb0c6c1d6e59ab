import GenTCP
import GenTCPModem
import GenTCPCore

/// What the core asks a link's process to do.
enum LinkCommand: Sendable {
    /// Read once, at most this many bytes (`{active, once}` with `buffer` set).
    case arm(Int)
    case send([UInt8])
    /// UDP links: one datagram to `host` (an address or a name) and `port`.
    case datagram([UInt8], host: String, port: Int)
    case close(abortive: Bool)
}

/// How a UDP link's socket is opened.
struct UDPOpen: Sendable {
    /// 0: any free port.
    var localPort: Int
    /// Whether the request's host and port name a remote to resolve (else the link has none).
    var hasRemote: Bool
}

struct ConnectRequest: Sendable {
    var link: Int
    var generation: UInt64
    var host: String
    var port: Int
    var timeoutMilliseconds: Int
    /// Set for UDP links.
    var udp: UDPOpen? = nil
    /// Set for TLS links run by the module (docs/modem-behaviour.md, ESP-T, BG-T, SIM-T).
    var tls: SimTLSSettings? = nil
}

struct ResolveRequest: Sendable {
    var epoch: UInt64
    var name: String
    var preference: IPVersionPreference
}

enum TimerRequest: Sendable {
    case bootBanner(epoch: UInt64, delay: UInt64)
    case restart(epoch: UInt64, delay: UInt64)
}

/// Work decided under the lock, done after it.
struct Effects {
    var connects: [ConnectRequest] = []
    var messages: [(Process, LinkCommand)] = []
    var resolves: [ResolveRequest] = []
    var timers: [TimerRequest] = []
    /// The `portVanishesAfterBytes` fault fired: run the simulator's vanish handler.
    var portVanished = false
    var isEmpty: Bool {
        connects.isEmpty && messages.isEmpty && resolves.isEmpty && timers.isEmpty && !portVanished
    }
}

/// A datagram waiting in a UDP link's receive queue.
struct QueuedDatagram {
    var source: SocketAddress
    var bytes: [UInt8]
}

struct LinkState {
    /// TCP, a UDP link with a remote (ESP-AT, SIM800, BG96 `"UDP"`), BG96 `"UDP SERVICE"`.
    enum Kind: Equatable {
        case tcp, udp, udpService
    }
    enum Phase: Equatable {
        case free
        case connecting
        case open
        /// The peer closed; buffered data is still readable, the close notice waits for it.
        case peerClosed
        /// BG96: the close URC went out; the id stays taken until `AT+QICLOSE`.
        case closing
    }
    var phase = Phase.free
    var generation: UInt64 = 0
    var process: Process?
    var buffer: [UInt8] = []
    var armed = false
    var notified = false
    var local: SocketAddress?
    var remote: SocketAddress?
    /// BG96 access mode (0 buffer, 1 push).
    var accessMode = 0
    var bytesReceived = 0
    var bytesRead = 0
    var bytesSent = 0
    var kind = Kind.tcp
    /// UDP: the receive queue (passive modes), whole datagrams, bounded in bytes and count.
    var datagrams: [QueuedDatagram] = []
    var datagramBytes = 0
    /// UDP: the local port asked for (0 any), known before the socket is open.
    var requestedLocalPort = 0
    /// ESP-AT UDP `<mode>` (ESP-U2): 0 keep the remote, 1 replace it once, 2 every datagram.
    var remoteMode = 0
    var remoteReplaced = false
    /// SIM800 and BG96 `"UDP"` in normal mode: datagrams from anyone but the remote are dropped.
    var filtersOthers = false
    /// A TLS link run by the module (BG96: opened with `AT+QSSLOPEN`, read with `AT+QSSLRECV`).
    var secure = false

    var isUDP: Bool { kind != .tcp }
    /// Bytes the module holds for the host.
    var held: Int { kind == .tcp ? buffer.count : datagramBytes }
    /// Whether anything waits for the host (a 0-byte datagram counts).
    var hasData: Bool { kind == .tcp ? !buffer.isEmpty : !datagrams.isEmpty }
    var inUse: Bool { phase != .free }
    var readable: Bool { phase == .open || phase == .peerClosed || phase == .closing }
}

/// The module's state, guarded by the simulator's mutex.
struct SimState {
    enum InputMode {
        case line
        case payload(link: Int, count: Int)
        /// BG96 `AT+QFUPL`: the file's bytes follow `CONNECT` (BG-T8).
        case upload(name: String, count: Int)
    }
    enum Busy: Equatable {
        case connecting(Int)
        case resolving
        case sending(Int)
    }
    /// The byte-count faults.
    enum ByteTrigger: Hashable {
        case reset, silence, vanish
    }
    /// SIM800's bearer, as `AT+CIPSTATUS` names it (`IP CONFIG` passes inside `AT+CIICR`).
    enum SIMBearer: Equatable {
        case initial, start, gprsAct, status, pdpDeact
    }

    let configuration: ModemSimulatorConfiguration
    let espVersion: FirmwareVersion
    var rng: SplitMix64
    var stats = ModemSimulatorStatistics()
    var effects = Effects()

    // Power and boot.
    var booting = true
    var poweredOn = false
    var bootEpoch: UInt64 = 0
    var restarting = false
    var silent: Bool
    var uartBytes = 0

    // Faults.
    var firedTriggers: Set<ByteTrigger> = []
    var pendingTrigger: ByteTrigger?
    /// Silence caused by a fault (a reset ends it), not by `setSilent` or the configuration.
    var faultSilenced = false
    var silentAfterConnectFired = false
    var passiveBytes = 0
    var passiveRevertFired = false
    /// The receive mode reverted to push (`passiveRevertsAfterBytes`).
    var passiveReverted = false
    var paddedHeaders = 0

    // Settings (back to defaults on every reset).
    var echo = true
    var multiplexed = false
    var espPassive: [Bool]
    /// ESP-AT `AT+CIPRECVTYPE=<id>,<mode>,1`: notices and `AT+CIPRECVLEN?` give the next datagram.
    var espReportNext: [Bool]
    /// SIM800 `AT+CIPSRIP=1`: the sender goes with notices, reads and pushed data.
    var simShowRemote = false
    /// SIM800 `AT+CLPORT=<n>,"UDP",<port>` per link (SIM-U2).
    var simLocalPort: [Int]
    /// SIM800 `AT+CIPUDPMODE` per link (SIM-U4): 0 normal, 1 extended.
    var simUDPMode: [Int]
    /// Where the datagram of the `AT+CIPSEND` / `AT+QISEND` under way goes.
    var sendDestination: (host: String, port: Int)?
    var remoteInfo = false
    var manualReceive = false  // SIM800 AT+CIPRXGET=1
    var ipHead = false  // SIM800 AT+CIPHEAD=1
    var quickSend = false  // SIM800 AT+CIPQSEND=1
    var bearerUp = false  // BG96 AT+QIACT
    /// ESP-AT per-link TLS settings (`AT+CIPSSLCCONF`, `AT+CIPSSLCSNI`, `AT+CIPSSLCALPN`: ESP-T1..T3).
    var espTLS: [Int: SimTLSSettings] = [:]
    /// BG96 SSL contexts 0–5 (`AT+QSSLCFG`: BG-T1).
    var bgSSLContexts: [Int: SimTLSSettings] = [:]
    /// BG96 files written with `AT+QFUPL` (name → a temporary file on the host); kept across
    /// restarts, as the module's flash keeps them (BG-T8).
    var uploadedFiles: [String: String] = [:]
    /// BG96 `"cacert"` file name per SSL context.
    var bgCACertName: [Int: String] = [:]
    /// SIM800 `AT+CIPSSL=1` in force (SIM-T1).
    var simSSL = false
    var simBearer = SIMBearer.initial
    /// SIM800 single-link state after a link ended (`IP CLOSE`, `TCP CLOSED`).
    var simSingleClosed: String?
    var baudRate: Int?

    // Input.
    var mode = InputMode.line
    var line: [UInt8] = []
    var lineOverflow = false
    var payload: [UInt8] = []
    var busy: Busy?
    var deferred: [UInt8] = []

    // Links.
    var links: [LinkState]
    var nextGeneration: UInt64 = 1

    // Output.
    var outQueue: [UInt8] = []
    var outHead = 0
    var lastByteWasNewline = true
    var inTransit = false
    var outputEpoch: UInt64 = 0
    var lineFreeAt: UInt64 = 0

    init(configuration: ModemSimulatorConfiguration) {
        self.configuration = configuration
        espVersion = FirmwareVersion(configuration.firmware)
        rng = SplitMix64(seed: configuration.seed ^ 0x6D6F_6465_6D73_696D)
        silent = configuration.faults.silent
        baudRate = configuration.faults.baudRate
        links = Array(repeating: LinkState(), count: configuration.linkCount)
        espPassive = Array(repeating: false, count: configuration.linkCount)
        espReportNext = Array(repeating: false, count: configuration.linkCount)
        simLocalPort = Array(repeating: 0, count: configuration.linkCount)
        simUDPMode = Array(repeating: 0, count: configuration.linkCount)
    }

    var dialect: ATDialect { configuration.dialect }
    var isESP: Bool { dialect == .espAT }

    mutating func takeEffects() -> Effects {
        defer { effects = Effects() }
        return effects
    }

    // MARK: Output

    var outputBacklog: Int { outQueue.count - outHead }

    /// Queues one message. Noise goes only between messages, where a line starts.
    mutating func emit(_ bytes: [UInt8]) {
        guard !silent, !booting || restarting, !bytes.isEmpty else { return }
        if lastByteWasNewline, configuration.faults.noiseProbability > 0,
           rng.chance(configuration.faults.noiseProbability) {
            let choices: [String] = isESP
                ? ["WIFI CONNECTED\r\n", "WIFI GOT IP\r\n", "\r\n"]
                : ["\r\n+CREG: 1\r\n", "\r\n+CGREG: 1\r\n", "\r\n"]
            outQueue.append(contentsOf: Array(choices[Int(rng.below(UInt64(choices.count)))].utf8))
            stats.noiseInserted += 1
        }
        outQueue.append(contentsOf: bytes)
        lastByteWasNewline = bytes.last == 0x0A
    }

    mutating func emit(_ text: String) { emit(Array(text.utf8)) }

    /// Boot banners bypass the boot gate.
    mutating func emitBanner(_ text: String) {
        outQueue.append(contentsOf: Array(text.utf8))
        lastByteWasNewline = true
    }

    enum OutputStep {
        case idle
        case deliverNow([UInt8], epoch: UInt64)
        case schedule([UInt8], epoch: UInt64, delay: UInt64)
    }

    /// Takes the next fragment to put on the wire, if the wire is free.
    mutating func nextOutputStep(now: UInt64) -> OutputStep {
        guard !inTransit, outHead < outQueue.count else { return .idle }
        let faults = configuration.faults
        var n = outQueue.count - outHead
        if let maxFragment = faults.maxFragmentLength, maxFragment > 0 {
            n = min(n, 1 + Int(rng.below(UInt64(maxFragment))))
        }
        if let baud = baudRate, baud > 0 {
            // A UART delivers bytes as they come off the line: about 10 ms at a time.
            n = min(n, max(16, baud / 1000))
        }
        if let trigger = nextTrigger() {
            let left = max(trigger.limit - uartBytes, 0)
            if n >= left {
                n = left
                pendingTrigger = trigger.kind
            }
        }
        let bytes = Array(outQueue[outHead..<outHead + n])
        outHead += n
        if outHead == outQueue.count {
            outQueue.removeAll(keepingCapacity: true)
            outHead = 0
        } else if outHead > 64 * 1024 {
            outQueue.removeFirst(outHead)
            outHead = 0
        }
        inTransit = true
        var delay: UInt64 = 0
        let jitter = faults.maxFragmentDelay.nanosecondsClamped
        if jitter > 0 { delay = rng.below(jitter + 1) }
        if let baud = baudRate, baud > 0 {
            let start = max(now, lineFreeAt)
            let wire = UInt64(n) * 10 * 1_000_000_000 / UInt64(baud)
            lineFreeAt = start + wire
            delay += lineFreeAt - now
        }
        if delay == 0 { return .deliverNow(bytes, epoch: outputEpoch) }
        return .schedule(bytes, epoch: outputEpoch, delay: delay)
    }

    /// A fragment reached the host (or was lost to a reset: `epoch` is old).
    mutating func outputDelivered(count: Int, epoch: UInt64) {
        guard epoch == outputEpoch else { return }
        inTransit = false
        uartBytes += count
        stats.bytesOut += count
        if let trigger = pendingTrigger {
            pendingTrigger = nil
            fire(trigger)
            return
        }
        // Push-mode links waiting for the UART.
        for i in links.indices { maybeArm(i) }
    }

    // MARK: Power

    mutating func powerOn() {
        guard !poweredOn else { return }
        poweredOn = true
        booting = true
        scheduleBoot()
    }

    mutating func scheduleBoot() {
        bootEpoch += 1
        effects.timers.append(.bootBanner(epoch: bootEpoch, delay: configuration.bootDelay.nanosecondsClamped))
    }

    mutating func bootFinished(epoch: UInt64) {
        guard epoch == bootEpoch, booting else { return }
        booting = false
        restarting = false
        guard configuration.printsBootBanner, !silent else { return }
        let noSIM = configuration.faults.noNetwork == .simNotReady
        switch dialect {
        case .espAT: emitBanner("\r\nready\r\n")
        case .sim800:
            emitBanner(noSIM ? "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: NOT READY\r\n"
                : "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n")
        case .bg96:
            emitBanner(noSIM ? "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: NOT READY\r\n\r\nAPP RDY\r\n"
                : "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\nAPP RDY\r\n")
        }
    }

    /// `AT+RST`: `OK` has been queued; the module goes down a little later.
    mutating func restart() {
        restarting = true
        booting = true
        bootEpoch += 1
        effects.timers.append(.restart(epoch: bootEpoch, delay: configuration.restartDelay.nanosecondsClamped))
    }

    mutating func restartDue(epoch: UInt64) {
        guard epoch == bootEpoch, restarting else { return }
        restarting = false
        reset()
    }

    /// The module restarts: every link dropped without a close notice, unsent output lost,
    /// settings back to defaults, boot banner after the boot delay.
    mutating func reset() {
        stats.resets += 1
        for i in links.indices { dropLink(i, abortive: true) }
        outQueue.removeAll()
        outHead = 0
        outputEpoch += 1
        inTransit = false
        lineFreeAt = 0
        lastByteWasNewline = true
        echo = true
        multiplexed = false
        for i in espPassive.indices { espPassive[i] = false }
        for i in espReportNext.indices { espReportNext[i] = false }
        for i in simLocalPort.indices { simLocalPort[i] = 0 }
        for i in simUDPMode.indices { simUDPMode[i] = 0 }
        simShowRemote = false
        sendDestination = nil
        remoteInfo = false
        manualReceive = false
        ipHead = false
        quickSend = false
        bearerUp = false
        espTLS.removeAll()
        bgSSLContexts.removeAll()
        bgCACertName.removeAll()
        simSSL = false
        simBearer = .initial
        simSingleClosed = nil
        passiveReverted = false
        pendingTrigger = nil
        if faultSilenced {
            faultSilenced = false
            silent = configuration.faults.silent
        }
        baudRate = configuration.faults.baudRate
        mode = .line
        line = []
        lineOverflow = false
        payload = []
        busy = nil
        deferred = []
        restarting = false
        booting = true
        scheduleBoot()
    }
}
