import GenTCP
import GenTCPModem
import GenTCPCore

/// What the core asks a link's process to do.
enum LinkCommand: Sendable {
    /// Read once, at most this many bytes (`{active, once}` with `buffer` set).
    case arm(Int)
    case send([UInt8])
    case close(abortive: Bool)
}

struct ConnectRequest: Sendable {
    var link: Int
    var generation: UInt64
    var host: String
    var port: Int
    var timeoutMilliseconds: Int
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

struct LinkState {
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

    var inUse: Bool { phase != .free }
    var readable: Bool { phase == .open || phase == .peerClosed || phase == .closing }
}

/// The module's state, guarded by the simulator's mutex.
struct SimState {
    enum InputMode {
        case line
        case payload(link: Int, count: Int)
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
    var remoteInfo = false
    var manualReceive = false  // SIM800 AT+CIPRXGET=1
    var ipHead = false  // SIM800 AT+CIPHEAD=1
    var quickSend = false  // SIM800 AT+CIPQSEND=1
    var bearerUp = false  // BG96 AT+QIACT
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
        remoteInfo = false
        manualReceive = false
        ipHead = false
        quickSend = false
        bearerUp = false
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

    // MARK: Input

    mutating func input(_ bytes: [UInt8]) {
        guard poweredOn, !silent, !booting else { return }
        if let trigger = nextTrigger(), uartBytes + bytes.count >= trigger.limit {
            let keep = max(trigger.limit - uartBytes, 0)
            uartBytes += keep
            stats.bytesIn += keep
            feed(bytes[..<keep])
            fire(trigger.kind)
            return
        }
        uartBytes += bytes.count
        stats.bytesIn += bytes.count
        feed(bytes[...])
    }

    mutating func feed(_ bytes: ArraySlice<UInt8>) {
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if booting || silent { return }
            if !isESP, busy != nil {
                deferred.append(contentsOf: bytes[i...])
                if deferred.count > 4096 { deferred.removeFirst(deferred.count - 4096) }
                return
            }
            switch mode {
            case .payload(let link, let count):
                let take = min(count - payload.count, bytes.endIndex - i)
                payload.append(contentsOf: bytes[i..<i + take])
                i += take
                if payload.count == count {
                    mode = .line
                    let data = payload
                    payload = []
                    payloadComplete(link: link, data: data)
                }
            case .line:
                let b = bytes[i]
                i += 1
                lineByte(b)
            }
        }
    }

    mutating func lineByte(_ b: UInt8) {
        if isESP {
            if b == 0x0A {
                var text = line
                if text.last == 0x0D { text.removeLast() }
                let overflow = lineOverflow
                line = []
                lineOverflow = false
                if busy != nil {
                    stats.busyReplies += 1
                    emit("busy p...\r\n")
                    return
                }
                if echo { emit(text + [0x0D, 0x0A]) }
                if text.isEmpty { return }
                commandLine(text, overflow: overflow)
            } else {
                appendLineByte(b)
            }
        } else {
            if b == 0x0A, line.isEmpty { return }  // the LF of a CR-LF host
            if echo { emit([b]) }
            if b == 0x0D {
                let text = line
                let overflow = lineOverflow
                line = []
                lineOverflow = false
                if text.isEmpty { return }
                commandLine(text, overflow: overflow)
            } else if b == 0x08, !line.isEmpty {
                line.removeLast()  // backspace, as terminals send
            } else {
                appendLineByte(b)
            }
        }
    }

    mutating func appendLineByte(_ b: UInt8) {
        if line.count < 512 { line.append(b) } else { lineOverflow = true }
    }

    mutating func commandLine(_ text: [UInt8], overflow: Bool) {
        stats.commands += 1
        if isESP, configuration.faults.spuriousBusyProbability > 0,
           rng.chance(configuration.faults.spuriousBusyProbability) {
            stats.busyReplies += 1
            emit("busy p...\r\n")
            return
        }
        guard !overflow, text.count <= (isESP ? 256 : 556),
              let command = ATCommandLine(text, caseSensitive: isESP) else {
            error()
            return
        }
        switch dialect {
        case .espAT: espExecute(command)
        case .sim800: simExecute(command)
        case .bg96: bgExecute(command)
        }
    }

    /// Cellular modules queue input that arrives while a send is under way.
    mutating func busyEnded() {
        busy = nil
        guard !isESP, !deferred.isEmpty else { return }
        let pending = deferred
        deferred = []
        feed(pending[...])
    }

    mutating func ok() { emit("\r\nOK\r\n") }
    mutating func error() { emit("\r\nERROR\r\n") }

    // MARK: Links

    mutating func linkIndex(_ id: Int?) -> Int? {
        guard let id, id >= 0, id < links.count else { return nil }
        return id
    }

    mutating func isPassive(_ link: Int) -> Bool {
        if passiveReverted { return false }
        switch dialect {
        case .espAT: return espPassive[link]
        case .sim800: return manualReceive
        case .bg96: return links[link].accessMode == 0
        }
    }

    mutating func startConnect(link: Int, host: String, port: Int, timeoutMilliseconds: Int? = nil) {
        let generation = nextGeneration
        nextGeneration += 1
        links[link] = LinkState()
        links[link].phase = .connecting
        links[link].generation = generation
        let timeout = timeoutMilliseconds ?? Int(configuration.connectTimeout.nanosecondsClamped / 1_000_000)
        effects.connects.append(ConnectRequest(link: link, generation: generation, host: host, port: port,
                                               timeoutMilliseconds: timeout))
    }

    /// Forgets a link and closes its socket.
    mutating func dropLink(_ link: Int, abortive: Bool) {
        if let p = links[link].process { effects.messages.append((p, .close(abortive: abortive))) }
        links[link] = LinkState()
        if case .sending(let l) = busy, l == link { busy = nil }
        if case .connecting(let l) = busy, l == link { busy = nil }
    }

    /// Asks the link's process for more data when the module has room for it.
    mutating func maybeArm(_ link: Int) {
        let l = links[link]
        guard l.phase == .open, !l.armed, let process = l.process else { return }
        let room: Int
        if isPassive(link) {
            room = configuration.linkBufferSize - l.buffer.count
        } else {
            guard outputBacklog < configuration.maxOutputBacklog else { return }
            room = isESP ? 2920 : 1460
        }
        guard room > 0 else { return }
        links[link].armed = true
        effects.messages.append((process, .arm(room)))
    }

    mutating func linkConnected(link: Int, generation: UInt64, process: Process,
                                local: SocketAddress?, remote: SocketAddress?) -> Bool {
        guard links[link].generation == generation, links[link].phase == .connecting else { return false }
        links[link].phase = .open
        links[link].process = process
        links[link].local = local
        links[link].remote = remote
        stats.linksOpened += 1
        switch dialect {
        case .espAT: espConnected(link)
        case .sim800: emit("\r\n\(simPrefix(link))CONNECT OK\r\n")
        case .bg96: emit("\r\n+QIOPEN: \(link),0\r\n")
        }
        if configuration.faults.silentAfterConnect, !silentAfterConnectFired {
            silentAfterConnectFired = true
            silent = true
            faultSilenced = true
        }
        maybeArm(link)
        return true
    }

    mutating func linkConnectFailed(link: Int, generation: UInt64, reason: SocketError.Reason) {
        guard links[link].generation == generation, links[link].phase == .connecting else { return }
        links[link] = LinkState()
        switch dialect {
        case .espAT: espConnectFailed(link)
        case .sim800:
            if multiplexed {
                emit("\r\n\(link), CONNECT FAIL\r\n")
            } else {
                emit("\r\nSTATE: TCP CLOSED\r\n\r\nCONNECT FAIL\r\n")
            }
        case .bg96:
            let code: Int
            switch reason {
            case .nonExistentDomain: code = 565
            case .timeout, .connectionTimedOut: code = 569
            default: code = 566
            }
            emit("\r\n+QIOPEN: \(link),\(code)\r\n")
        }
    }

    mutating func linkData(link: Int, generation: UInt64, bytes: [UInt8]) {
        guard links[link].generation == generation, links[link].phase == .open else { return }
        links[link].armed = false
        links[link].bytesReceived += bytes.count
        if isPassive(link), let limit = configuration.faults.passiveRevertsAfterBytes, !passiveRevertFired {
            passiveBytes += bytes.count
            if passiveBytes >= limit { revertToPush() }
        }
        if isPassive(link) {
            links[link].buffer.append(contentsOf: bytes)
            if !links[link].notified {
                links[link].notified = true
                dataNotice(link)
            }
        } else {
            push(link, bytes)
        }
        maybeArm(link)
    }

    /// The passive-mode "data waiting" URC.
    mutating func dataNotice(_ link: Int) {
        let total = links[link].buffer.count
        switch dialect {
        case .espAT:
            let n = lengthField(total)
            emit(multiplexed ? "\r\n+IPD,\(link),\(n)\r\n" : "\r\n+IPD,\(n)\r\n")
        case .sim800: emit(multiplexed ? "\r\n+CIPRXGET: 1,\(link)\r\n" : "\r\n+CIPRXGET: 1\r\n")
        case .bg96: emit("\r\n+QIURC: \"recv\",\(link)\r\n")
        }
    }

    /// Push mode: the data goes out at once, with the dialect's header.
    mutating func push(_ link: Int, _ bytes: [UInt8]) {
        var offset = 0
        let chunk = isESP ? 2920 : 1460
        while offset < bytes.count {
            let piece = Array(bytes[offset..<min(offset + chunk, bytes.count)])
            offset += piece.count
            var header: String
            let n = lengthField(piece.count)
            switch dialect {
            case .espAT:
                header = multiplexed ? "\r\n+IPD,\(link),\(n)" : "\r\n+IPD,\(n)"
                if remoteInfo, let r = links[link].remote { header += ",\"\(r.address)\",\(r.port)" }
                header += ":"
            case .sim800:
                if multiplexed {
                    header = "\r\n+RECEIVE,\(link),\(n):\r\n"
                } else {
                    header = ipHead ? "\r\n+IPD,\(n):" : ""
                }
            case .bg96:
                header = "\r\n+QIURC: \"recv\",\(link),\(n)\r\n"
            }
            emit(Array(header.utf8) + piece)
        }
    }

    mutating func linkEnded(link: Int, generation: UInt64) {
        guard links[link].generation == generation, links[link].phase == .open else { return }
        links[link].armed = false
        links[link].phase = .peerClosed
        // ESP-AT (ESP-11) holds CLOSED back while passive data waits; SIM800 (SIM-12) and BG96
        // (BG-6, BG-7) report the close at once and keep the data readable.
        if dialect != .espAT || links[link].buffer.isEmpty { closeNotice(link) }
    }

    /// The peer's close as the dialect reports it.
    mutating func closeNotice(_ link: Int) {
        switch dialect {
        case .espAT:
            emit(multiplexed ? "\(link),CLOSED\r\n" : "CLOSED\r\n")
            dropLink(link, abortive: false)
        case .sim800:
            emit(multiplexed ? "\r\n\(link), CLOSED\r\n" : "\r\nCLOSED\r\n")
            if !multiplexed { simSingleClosed = "TCP CLOSED" }
            // Readable with AT+CIPRXGET=2 until drained, then released (SIM-12).
            if links[link].buffer.isEmpty { dropLink(link, abortive: false) }
        case .bg96:
            emit("\r\n+QIURC: \"closed\",\(link)\r\n")
            links[link].phase = .closing
        }
    }

    /// `passiveRevertsAfterBytes`: the receive mode falls back to push; what the module holds
    /// goes out first, in the push form, so nothing is lost or reordered.
    mutating func revertToPush() {
        passiveRevertFired = true
        passiveReverted = true
        // The settings are gone, so the queries say so too.
        for i in espPassive.indices { espPassive[i] = false }
        manualReceive = false
        for i in links.indices where !links[i].buffer.isEmpty {
            let data = links[i].buffer
            links[i].buffer = []
            links[i].bytesRead += data.count
            push(i, data)
            afterDrain(i)
        }
    }

    /// The length field of a data header, padded by the `overlongHeaders` fault.
    mutating func lengthField(_ n: Int) -> String {
        guard let padding = configuration.faults.overlongHeaders, padding.count > 0 else { return "\(n)" }
        if let limit = padding.headers, paddedHeaders >= limit { return "\(n)" }
        paddedHeaders += 1
        return String(repeating: padding.fill == .zeros ? "0" : " ", count: padding.count) + "\(n)"
    }

    // MARK: Byte-count faults

    /// The next byte-count fault to fire: the smallest limit not yet reached.
    func nextTrigger() -> (limit: Int, kind: ByteTrigger)? {
        let faults = configuration.faults
        let all: [(Int?, ByteTrigger)] = [(faults.resetAfterBytes, .reset), (faults.silenceAfterBytes, .silence),
                                          (faults.portVanishesAfterBytes, .vanish)]
        var best: (limit: Int, kind: ByteTrigger)?
        for (limit, kind) in all {
            guard let limit, !firedTriggers.contains(kind) else { continue }
            if best == nil || limit < best!.limit { best = (limit, kind) }
        }
        return best
    }

    mutating func fire(_ kind: ByteTrigger) {
        guard !firedTriggers.contains(kind) else { return }
        firedTriggers.insert(kind)
        if pendingTrigger == kind { pendingTrigger = nil }
        switch kind {
        case .reset:
            reset()
        case .silence:
            silent = true
            faultSilenced = true
            discardOutput()
        case .vanish:
            for i in links.indices { dropLink(i, abortive: true) }
            discardOutput()
            poweredOn = false
            silent = true
            bootEpoch += 1
            effects.portVanished = true
        }
    }

    /// Output not yet on the wire is lost; a fragment in transit is not delivered.
    mutating func discardOutput() {
        outQueue.removeAll()
        outHead = 0
        outputEpoch += 1
        inTransit = false
        lastByteWasNewline = true
    }

    /// The network dropped the packet context (`ModemSimulator.dropBearer()`).
    mutating func bearerLost() {
        switch dialect {
        case .espAT:
            return
        case .sim800:
            // SIM-14: every link dead, PDP DEACT until AT+CIPSHUT.
            guard simBearer == .gprsAct || simBearer == .status else { return }
            emit("\r\n+PDP: DEACT\r\n")
            for i in links.indices { dropLink(i, abortive: true) }
            simBearer = .pdpDeact
            simSingleClosed = nil
        case .bg96:
            // BG-10: pdpdeact, then each socket reports closed and waits for AT+QICLOSE.
            guard bearerUp else { return }
            bearerUp = false
            emit("\r\n+QIURC: \"pdpdeact\",1\r\n")
            for i in links.indices {
                switch links[i].phase {
                case .connecting:
                    dropLink(i, abortive: true)
                    emit("\r\n+QIOPEN: \(i),566\r\n")
                case .open, .peerClosed:
                    if let p = links[i].process { effects.messages.append((p, .close(abortive: true))) }
                    links[i].process = nil
                    links[i].armed = false
                    emit("\r\n+QIURC: \"closed\",\(i)\r\n")
                    links[i].phase = .closing
                case .free, .closing:
                    break
                }
            }
        }
    }

    /// Takes up to `maximum` buffered bytes of a passive link.
    mutating func take(_ link: Int, _ maximum: Int) -> [UInt8] {
        let n = min(maximum, links[link].buffer.count)
        let data = Array(links[link].buffer.prefix(n))
        links[link].buffer.removeFirst(n)
        links[link].bytesRead += n
        return data
    }

    /// After a host read: the next notice, the held-back close, more reading.
    mutating func afterDrain(_ link: Int) {
        if links[link].buffer.isEmpty {
            links[link].notified = false
            if links[link].phase == .peerClosed {
                switch dialect {
                case .espAT: closeNotice(link)  // ESP-11: CLOSED once the data is read
                case .sim800: dropLink(link, abortive: false)  // SIM-12: CLOSED came already
                case .bg96: break
                }
            }
        } else if isESP {
            dataNotice(link)  // esp-at #994: a new +IPD with the remaining total
        }
        if links[link].inUse { maybeArm(link) }
    }

    mutating func payloadComplete(link: Int, data: [UInt8]) {
        switch dialect {
        case .espAT:
            emit("\r\nRecv \(data.count) bytes\r\n")
        case .sim800, .bg96:
            break
        }
        guard links[link].phase == .open || links[link].phase == .peerClosed, let process = links[link].process else {
            sendFinished(link: link, generation: links[link].generation, ok: false)
            return
        }
        links[link].bytesSent += data.count
        effects.messages.append((process, .send(data)))
        if dialect == .sim800, quickSend {
            emit("\r\nDATA ACCEPT:\(link),\(data.count)\r\n")
            return
        }
        busy = .sending(link)
    }

    mutating func sendFinished(link: Int, generation: UInt64, ok: Bool) {
        guard links[link].generation == generation else { return }
        if dialect == .sim800, quickSend { return }
        switch dialect {
        case .espAT: emit(ok ? "\r\nSEND OK\r\n" : "\r\nSEND FAIL\r\n")
        case .sim800: emit("\r\n\(simPrefix(link))\(ok ? "SEND OK" : "SEND FAIL")\r\n")
        case .bg96: emit(ok ? "\r\nSEND OK\r\n" : "\r\nERROR\r\n")
        }
        busyEnded()
    }

    mutating func resolved(epoch: UInt64, name: String, addresses: [IPAddress]?) {
        guard epoch == bootEpoch else { return }
        switch dialect {
        case .espAT:
            guard busy == .resolving else { return }
            if let a = addresses?.first {
                let quoted = espVersion >= FirmwareVersion("2.0")
                emit(quoted ? "+CIPDOMAIN:\"\(a)\"\r\n\r\nOK\r\n" : "+CIPDOMAIN:\(a)\r\n\r\nOK\r\n")
            } else {
                emit(espVersion < FirmwareVersion("2.0") ? "DNS Fail\r\n\r\nERROR\r\n" : "\r\nERROR\r\n")
            }
            busyEnded()
        case .sim800:
            if let a = addresses?.first {
                emit("\r\n+CDNSGIP: 1,\"\(name)\",\"\(a)\"\r\n")
            } else {
                emit("\r\n+CDNSGIP: 0,8\r\n")
            }
        case .bg96:
            if let addresses, !addresses.isEmpty {
                var text = "\r\n+QIURC: \"dnsgip\",0,\(addresses.count),600\r\n"
                for a in addresses { text += "\r\n+QIURC: \"dnsgip\",\"\(a)\"\r\n" }
                emit(text)
            } else {
                emit("\r\n+QIURC: \"dnsgip\",565\r\n")
            }
        }
    }

    func simPrefix(_ link: Int) -> String { multiplexed ? "\(link), " : "" }
}
