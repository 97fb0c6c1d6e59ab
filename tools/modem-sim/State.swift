import GenTCP
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
    var isEmpty: Bool { connects.isEmpty && messages.isEmpty && resolves.isEmpty && timers.isEmpty }
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
    var resetBudgetUsed = false
    var uartBytes = 0

    // Settings (back to defaults on every reset).
    var echo = true
    var multiplexed = false
    var espPassive: [Bool]
    var remoteInfo = false
    var manualReceive = false  // SIM800 AT+CIPRXGET=1
    var ipHead = false  // SIM800 AT+CIPHEAD=1
    var quickSend = false  // SIM800 AT+CIPQSEND=1
    var bearerUp = false
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
    var pendingReset = false

    init(configuration: ModemSimulatorConfiguration) {
        self.configuration = configuration
        espVersion = FirmwareVersion(configuration.firmware)
        rng = SplitMix64(seed: configuration.seed ^ 0x6D6F_6465_6D73_696D)
        silent = configuration.faults.silent
        baudRate = configuration.faults.baudRate
        links = Array(repeating: LinkState(), count: configuration.linkCount)
        espPassive = Array(repeating: false, count: configuration.linkCount)
    }

    var dialect: ModemSimulatorDialect { configuration.dialect }
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
        if let limit = faults.resetAfterBytes, !resetBudgetUsed {
            let left = max(limit - uartBytes, 0)
            if n >= left {
                n = left
                pendingReset = true
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
        if pendingReset {
            pendingReset = false
            resetBudgetUsed = true
            reset()
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
        switch dialect {
        case .espAT: emitBanner("\r\nready\r\n")
        case .sim800: emitBanner("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n")
        case .bg96: emitBanner("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\nAPP RDY\r\n")
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
        var bytes = bytes
        if let limit = configuration.faults.resetAfterBytes, !resetBudgetUsed, uartBytes + bytes.count >= limit {
            let keep = max(limit - uartBytes, 0)
            bytes = Array(bytes.prefix(keep))
            uartBytes += keep
            stats.bytesIn += keep
            feed(bytes[...])
            resetBudgetUsed = true
            reset()
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
        case .espAT: emit(multiplexed ? "\r\n+IPD,\(link),\(total)\r\n" : "\r\n+IPD,\(total)\r\n")
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
            switch dialect {
            case .espAT:
                header = multiplexed ? "\r\n+IPD,\(link),\(piece.count)" : "\r\n+IPD,\(piece.count)"
                if remoteInfo, let r = links[link].remote { header += ",\"\(r.address)\",\(r.port)" }
                header += ":"
            case .sim800:
                if multiplexed {
                    header = "\r\n+RECEIVE,\(link),\(piece.count):\r\n"
                } else {
                    header = ipHead ? "\r\n+IPD,\(piece.count):" : ""
                }
            case .bg96:
                header = "\r\n+QIURC: \"recv\",\(link),\(piece.count)\r\n"
            }
            emit(Array(header.utf8) + piece)
        }
    }

    mutating func linkEnded(link: Int, generation: UInt64) {
        guard links[link].generation == generation, links[link].phase == .open else { return }
        links[link].armed = false
        links[link].phase = .peerClosed
        if links[link].buffer.isEmpty { closeNotice(link) }
    }

    /// The peer's close, reported once the module's buffer for the link is empty.
    mutating func closeNotice(_ link: Int) {
        switch dialect {
        case .espAT:
            emit(multiplexed ? "\(link),CLOSED\r\n" : "CLOSED\r\n")
            dropLink(link, abortive: false)
        case .sim800:
            emit(multiplexed ? "\r\n\(link), CLOSED\r\n" : "\r\nCLOSED\r\n")
            dropLink(link, abortive: false)
        case .bg96:
            emit("\r\n+QIURC: \"closed\",\(link)\r\n")
            links[link].phase = .closing
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
    mutating func afterRead(_ link: Int) {
        if links[link].buffer.isEmpty {
            links[link].notified = false
            if links[link].phase == .peerClosed { closeNotice(link) }
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
