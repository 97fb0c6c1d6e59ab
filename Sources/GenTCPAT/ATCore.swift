import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPModem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The at driver's machinery: one module, one link, one engine, one lock.
///
/// Everything runs under `lock`: the link's readiness callbacks (reading the module, writing
/// commands), runtime timers (engine deadlines, retries, caller timeouts) and the port's calls on
/// connections. Nothing calls out while holding it: readiness for the port is scheduled on the
/// runtime, and continuations are resumed after the lock is released.
final class ATCore: SerialLinkDelegate, @unchecked Sendable {
    let link: any SerialLink
    let runtime: any Runtime
    let configuration: ATConfiguration

    var mutex = pthread_mutex_t()
    /// Work to do once the lock is released (resuming callers).
    var deferred: [() -> Void] = []

    // MARK: State, guarded by `mutex`

    enum Phase: Equatable {
        /// Not started.
        case idle
        /// Running the init sequence; `step` indexes ``initSteps``.
        case initialising(step: Int)
        /// The init step `step` (SIMCom `AT+CIPSTATUS`) answered `OK`; its `STATE:` line is due.
        case awaitingState(step: Int)
        /// Waiting `retryDelay` before the next init attempt.
        case waitingToRetry
        /// `AT+RST` sent or expected: waiting for the boot banner.
        case restarting
        /// Taking work.
        case ready
        /// The link is gone (or the driver stopped).
        case dead
    }

    final class ConnectRequest: @unchecked Sendable {
        /// The peer's address: nil for an offloaded TLS connect by name.
        let address: SocketAddress?
        /// What goes to the module: the address as text, or the name as given.
        let host: String
        let port: Int
        /// Offloaded TLS: what the module checks and offers; nil for a plain connect.
        let tls: ModemTLSSettings?
        let options: SocketOptions
        let delegate: any ConnectionDelegate
        let callerTimeout: Bool
        var continuation: UnsafeContinuation<Result<any Connection, SocketError>, Never>?
        var submitted = false
        var timer: TimerID?
        /// The setting commands before the connect (TLS settings, SIMCom's `AT+CIPSSL`), worked
        /// out when the request reaches the head of the queue; the next one's index.
        var steps: [ModemTLSStep]?
        var nextStep = 0
        /// A setting command of this request is with the module.
        var stepInFlight = false

        init(address: SocketAddress?, host: String, port: Int, tls: ModemTLSSettings?, options: SocketOptions,
             delegate: any ConnectionDelegate, callerTimeout: Bool,
             continuation: UnsafeContinuation<Result<any Connection, SocketError>, Never>) {
            self.address = address
            self.host = host
            self.port = port
            self.tls = tls
            self.options = options
            self.delegate = delegate
            self.callerTimeout = callerTimeout
            self.continuation = continuation
        }
    }

    final class ResolveRequest: @unchecked Sendable {
        let host: String
        var continuation: UnsafeContinuation<Result<[IPAddress], SocketError>, Never>?
        var timer: TimerID?
        var addresses: [IPAddress] = []

        init(host: String, continuation: UnsafeContinuation<Result<[IPAddress], SocketError>, Never>) {
            self.host = host
            self.continuation = continuation
        }
    }

    enum Slot {
        case free
        /// A connect waits for this link (queued or submitted). A nil request: the caller gave
        /// up; the link is closed when the module answers.
        case connecting(ConnectRequest?)
        case open(ATConnection)
        /// A gen_udp socket's link (opening, open, or closing after the socket closed).
        case datagram(ATDatagram)
    }

    var engine: ModemEngine<StandardDialect>
    var phase = Phase.idle
    /// ``stop()`` was called: the driver is dead and says so (`enetdown`, "stopped").
    var stopped = false
    var initSteps: [ModemCommand] = []
    var probesFailed = 0
    var slots: [Slot]
    /// Links whose module id needs an `AT+CIPCLOSE` / `AT+QICLOSE` with nobody waiting on it.
    var orphanCloses: Set<Int> = []
    var connectQueue: [Int] = []
    var resolveQueue: [ResolveRequest] = []
    var resolveActive: ResolveRequest?
    var needProbe = false
    var needRestart = false
    /// The module pushed data though passive receive was asked: ask for it again.
    var needPassiveRestore = false
    /// The command the module last left unanswered, while it is being probed.
    var silence: String?
    /// The last readiness answer (``ModemEvent/status(_:)``) and its line, during bring-up.
    var lastStatus: ModemStatus?
    var lastStatusLine = ""
    /// SIMCom's TCP/IP state at the last `AT+CIPSTATUS`.
    var bearerState: ModemBearerState?
    /// `AT+CIPSHUT`s sent in this bring-up (a module that stays broken is not shut forever).
    var shutsThisInit = 0
    /// Quectel: whether the context steps were planned in this bring-up.
    var bearerPlanned = false
    /// Whether ``incident`` was set by bring-up (cleared once bring-up succeeds).
    var incidentFromBringUp = false
    /// Links whose buffered amount is to be asked again (a notice may have been lost, or the
    /// module has been quiet for ``ATConfiguration/livenessInterval``).
    var availabilityQueue: [Int] = []
    /// When the module last sent anything (runtime ns).
    var lastInput: UInt64 = 0
    var livenessTimer: TimerID?
    var engineTimer: TimerID?
    var engineTimerDeadline: Int64?
    var phaseTimer: TimerID?
    var linkWriteArmed = false
    var roundRobin = 0
    var preferSend = false
    var localIP: IPAddress?
    /// Every gen_udp socket not closed (SIM800's have no link before `connect`).
    var datagramEndpoints: [ATDatagram] = []
    /// The socket whose setup command is in flight.
    var datagramStepOwner: ATDatagram?
    /// The module names senders (`AT+CIPDINFO=1`, `AT+CIPSRIP=1`) since its last restart.
    var remoteInfoOn = false
    /// The last local port picked for a socket that asked for port 0.
    var nextEphemeralPort = 49_152
    var ephemeralSeeded = false
    var stats = ATStatistics()
    /// What last went wrong on the line, as one sentence (``SerialLinkIncidents``).
    var incident: String?
    let input: UnsafeMutableRawBufferPointer
    let sendBufferSize: Int

    init(link: any SerialLink, configuration: ATConfiguration, runtime: any Runtime) {
        self.link = link
        self.runtime = runtime
        var c = configuration
        if c.engine.baudRate <= 0 { c.engine.baudRate = link.configuration.baudRate }
        self.configuration = c
        engine = ModemEngine(dialect: c.dialect.makeDialect(), configuration: c.engine)
        slots = [Slot](repeating: .free, count: engine.linkCount)
        input = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 8)
        sendBufferSize = max(1, c.sendBufferSize ?? 2 * engine.maxSendChunk)
        pthread_mutex_init(&mutex, nil)
    }

    deinit {
        input.deallocate()
        pthread_mutex_destroy(&mutex)
    }

    /// Runs `body` under the lock, then whatever it deferred.
    func locked<R>(_ body: (ATCore) -> R) -> R {
        pthread_mutex_lock(&mutex)
        let result = body(self)
        let work = deferred
        deferred.removeAll()
        pthread_mutex_unlock(&mutex)
        for w in work { w() }
        return result
    }

    var now: MillisecondInstant { MillisecondInstant(milliseconds: Int64(clamping: runtime.now / 1_000_000)) }

    var isReady: Bool { locked { $0.phase == .ready } }

    var isStopped: Bool { locked { $0.stopped } }

    var lastIncident: String? { locked { $0.incident } }

    var statisticsSnapshot: ATStatistics {
        locked { core in
            var s = core.stats
            s.engine = core.engine.statistics
            return s
        }
    }

    // MARK: Start and stop

    /// Takes the link and begins bring-up, when nothing has started yet (lock held): by
    /// ``start()``, or by the first connect or lookup of a driver nobody started.
    func beginIfIdle() {
        guard phase == .idle else { return }
        link.setDelegate(self)
        link.armRead()
        beginInit()
    }

    func start() {
        locked { core in
            guard core.phase == .idle else { return }
            core.beginIfIdle()
            core.pump()
        }
    }

    /// Stops the driver: every connection, connect and lookup fails with `enetdown`, the driver
    /// contract's one reason for a stopped driver (the network behind it is down, as a kernel says
    /// of an interface taken down; `closed` would read as this socket's own close or a clean end).
    func stop() {
        locked { core in
            core.stopped = true
            core.moduleLost(reason: .networkDown, dead: true, incident: nil)
        }
        link.close()
    }

    /// Whether the module holds nothing of ours: every link free and closed in the engine, no
    /// close pending, no command in flight.
    var holdsNoLinks: Bool {
        guard engine.isIdle, orphanCloses.isEmpty else { return false }
        for link in 0..<slots.count {
            if case .free = slots[link], engine.linkState(link) == .closed { continue }
            return false
        }
        return true
    }

    /// Lets the closes of closed sockets reach the module (up to `timeoutNanoseconds`), then stops.
    func finish(timeoutNanoseconds: UInt64) async {
        let deadline = runtime.now &+ timeoutNanoseconds
        // A module that is not ready (restarting, never brought up, gone) holds nothing to close.
        while !locked({ $0.phase != .ready || $0.holdsNoLinks }), runtime.now < deadline {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                _ = runtime.schedule(afterNanoseconds: 10_000_000) { continuation.resume() }
            }
        }
        stop()
    }

    // MARK: The scheduler

    /// Fires due engine timers, starts the next piece of work when the engine is idle, writes
    /// what the engine has for the module, and keeps the engine's timer in step.
    func pump() {
        guard phase != .dead else { return }
        var guardRounds = 0
        while guardRounds < 32 {
            guardRounds += 1
            while let event = engine.nextEvent(now: now) { handle(event) }
            guard engine.isIdle, let work = nextWork() else { break }
            work()
        }
        flushOutput()
        updateEngineTimer()
        updateLivenessTimer()
    }

    /// While connections are open, a module quiet for ``ATConfiguration/livenessInterval`` is
    /// asked how much it holds for each: a lost data notice is found, and a module that stopped
    /// answering is found (the query times out, the probe follows) even when nothing was
    /// being sent or read.
    func updateLivenessTimer() {
        let interval = configuration.livenessInterval.nanoseconds ?? 0
        let watched = phase == .ready && interval > 0 && slots.contains { slot in
            if case .open(let c) = slot { return !c.ended && !c.userClosed }
            if case .datagram(let e) = slot { return e.linkOpen && !e.userClosed && e.failure == nil }
            return false
        }
        guard watched else {
            if let t = livenessTimer { runtime.cancel(t) }
            livenessTimer = nil
            return
        }
        guard livenessTimer == nil else { return }
        let now = runtime.now
        let due = max(lastInput, now - min(now, interval)) + interval
        livenessTimer = runtime.schedule(afterNanoseconds: due > now ? due - now : 0) { [weak self] in
            self?.locked { core in
                core.livenessTimer = nil
                if core.runtime.now >= core.lastInput + interval { core.askAvailability() }
                core.pump()
            }
        }
    }

    /// Queues an availability query for every open connection not already reading.
    func askAvailability() {
        guard phase == .ready else { return }
        for link in 0..<slots.count {
            if case .open(let c) = slots[link], !c.ended, !c.userClosed, !c.readInFlight, c.available == 0,
               !availabilityQueue.contains(link) {
                availabilityQueue.append(link)
            }
            // A UDP link of a module that is read (SIM800, BG96) is simply read: a lost notice
            // (the module says `+QIURC: "recv"` once until the buffer is read empty, BG-U4) is
            // found, and an empty buffer answers `+QIRD: 0` / `+CIPRXGET: 2,<n>,0,0`.
            if case .datagram(let e) = slots[link], e.linkOpen, !e.userClosed, e.failure == nil {
                if configuration.dialect == .espAT {
                    // Pushed receive has nothing to ask: an `AT` shows the module still answers.
                    needProbe = true
                } else if !e.readInFlight {
                    e.moduleHasData = true
                }
            }
        }
        // The queries are input too: the next check is an interval after their answers.
        lastInput = runtime.now
    }

    func flushOutput() {
        var failed: LinkIO?
        while engine.pendingOutputCount > 0 {
            var progressed = false
            engine.withPendingOutput { bytes in
                let result = link.write(bytes)
                switch result {
                case .bytes(let n):
                    progressed = n > 0
                    return n
                case .wouldBlock:
                    return 0
                case .hangUp, .failed:
                    failed = result
                    return 0
                }
            }
            if failed != nil || !progressed { break }
        }
        if let failed {
            lineLost(failed)
            return
        }
        if engine.pendingOutputCount > 0, !linkWriteArmed {
            linkWriteArmed = true
            link.armWrite()
        }
    }

    func updateEngineTimer() {
        let deadline = engine.nextDeadline?.milliseconds
        if deadline == engineTimerDeadline { return }
        if let t = engineTimer { runtime.cancel(t) }
        engineTimer = nil
        engineTimerDeadline = deadline
        guard let deadline else { return }
        let target = UInt64(max(0, deadline)).multipliedReportingOverflow(by: 1_000_000)
        let at = target.overflow ? UInt64.max : target.partialValue
        let current = runtime.now
        let delay = at > current ? at - current : 0
        engineTimer = runtime.schedule(afterNanoseconds: delay) { [weak self] in
            self?.locked { core in
                core.engineTimer = nil
                core.engineTimerDeadline = nil
                core.pump()
            }
        }
    }

    /// The next command to submit, as a closure that submits it; nil when there is nothing.
    func nextWork() -> (() -> Void)? {
        switch phase {
        case .idle, .dead, .waitingToRetry, .restarting, .awaitingState:
            return nil
        case .initialising(let step):
            guard step < initSteps.count else {
                finishInit()
                return { }
            }
            let command = initSteps[step]
            let timeout: UInt32? = command.kind == .probe ? configuration.probeTimeout.engineMilliseconds : nil
            return { [self] in submit(command, timeout: timeout) }
        case .ready:
            break
        }
        if needRestart {
            needRestart = false
            needProbe = false
            return { [self] in
                // The module stopped answering: what it held for every link is lost.
                let why = silence ?? "the modem stopped answering"
                failOpenConnections(.connectionTimedOut, incident: why)
                restartModule(why)
            }
        }
        if needPassiveRestore {
            needPassiveRestore = false
            return { [self] in submit(.enablePassiveReceive) }
        }
        if needProbe {
            needProbe = false
            return { [self] in
                stats.recoveryProbes += 1
                submit(.probe, timeout: configuration.probeTimeout.engineMilliseconds)
            }
        }
        // Closes first: they free link ids.
        for link in 0..<slots.count {
            if orphanCloses.contains(link) {
                if engine.linkState(link) == .closed {
                    orphanCloses.remove(link)
                    continue
                }
                return { [self] in submit(.close(link: link)) }
            }
            if case .datagram(let e) = slots[link], e.userClosed, e.tx.isEmpty || e.failure != nil,
               !e.sendInFlight, datagramStepOwner !== e {
                if !e.linkOpen || engine.linkState(link) == .closed {
                    e.linkOpen = false
                    e.link = nil
                    slots[link] = .free
                    continue
                }
                return { [self] in submit(.close(link: link)) }
            }
            if case .open(let c) = slots[link], c.userClosed,
               c.abortive || c.tx.isEmpty || c.ended, c.sendInFlight == 0 {
                if engine.linkState(link) == .closed {
                    c.moduleOpen = false
                    slots[link] = .free
                    continue
                }
                return { [self] in submit(.close(link: link)) }
            }
        }
        if let step = nextDatagramStep() { return step }
        if let link = connectQueue.first, case .connecting(let request?) = slots[link] {
            if request.steps == nil {
                do throws(ModemError) {
                    request.steps = try request.tls.map { settings throws(ModemError) in
                        try engine.dialect.tlsSteps(link: link, host: request.host, settings: settings)
                    } ?? engine.dialect.plainConnectSteps(link: link)
                } catch {
                    connectQueue.removeFirst()
                    slots[link] = .free
                    finishConnect(request, .failure(SocketError(.init(error.reason), error.detail)))
                    return { }
                }
            }
            if let steps = request.steps, request.nextStep < steps.count {
                let step = steps[request.nextStep]
                if case .quectelUpload(let name, let pem) = step {
                    return { [self] in
                        request.stepInFlight = true
                        let at = now
                        let result: Result<Void, ModemError> = pem.withUnsafeBytes { bytes in
                            do throws(ModemError) {
                                try engine.upload(bytes, link: link, name: name, now: at)
                                return .success(())
                            } catch {
                                return .failure(error)
                            }
                        }
                        if case .failure(let error) = result { failedToSubmit(.configureTLS(link: link, step: step), error) }
                    }
                }
                return { [self] in
                    request.stepInFlight = true
                    submit(.configureTLS(link: link, step: step))
                }
            }
            connectQueue.removeFirst()
            return { [self] in
                request.submitted = true
                if request.tls != nil {
                    submit(.connectSecure(link: link, host: request.host, port: request.port))
                } else {
                    submit(.connect(link: link, host: request.host, port: request.port))
                }
            }
        } else if !connectQueue.isEmpty {
            connectQueue.removeFirst()
            return { }
        }
        while let link = availabilityQueue.first {
            availabilityQueue.removeFirst()
            if case .open(let c) = slots[link], !c.ended, !c.userClosed, !c.readInFlight, c.moduleOpen {
                return { [self] in submit(.queryAvailable(link: link)) }
            }
        }
        if resolveActive == nil, !resolveQueue.isEmpty {
            let request = resolveQueue.removeFirst()
            return { [self] in
                resolveActive = request
                submit(.resolve(host: request.host))
            }
        }
        // Reads and sends, round-robin over links, alternating which goes first.
        let n = slots.count
        preferSend.toggle()
        for i in 0..<n {
            let link = (roundRobin + i) % n
            if case .datagram(let e) = slots[link] {
                if e.wantsModuleSend && (preferSend || !e.wantsModuleRead) {
                    roundRobin = (link + 1) % n
                    return { [self] in startDatagramSend(e) }
                }
                if e.wantsModuleRead {
                    roundRobin = (link + 1) % n
                    return { [self] in startDatagramRead(e) }
                }
                continue
            }
            guard case .open(let c) = slots[link] else { continue }
            let canSend = c.wantsModuleSend
            let canRead = c.wantsModuleRead
            if canSend && (preferSend || !canRead) {
                roundRobin = (link + 1) % n
                return { [self] in startSend(c) }
            }
            if canRead {
                roundRobin = (link + 1) % n
                return { [self] in startRead(c) }
            }
        }
        return nil
    }

    func submit(_ command: ModemCommand, timeout: UInt32? = nil) {
        do throws(ModemError) {
            try engine.submit(command, now: now, timeout: timeout)
        } catch {
            failedToSubmit(command, error)
        }
    }

    /// A command the engine refused (a bad argument, mostly): treated as its failure.
    func failedToSubmit(_ command: ModemCommand, _ error: ModemError) {
        if let e = datagramStepOwner, let step = e.steps.first, step.kind == command.kind, step.link == command.link {
            // A UDP socket's setup command the dialect cannot build (ESP-AT before v3.3 has no
            // per-link receive mode): the socket's setup fails, and a link it opened goes.
            datagramStepOwner = nil
            let link = e.link
            datagramStepFailed(e, SocketError(.init(error.reason), error.detail))
            if let link, e.linkOpen { closeDatagramLink(e, link) }
            return
        }
        switch command {
        case .configureTLS(let link, _):
            // A setting the dialect could not build: the connect it was for fails.
            if case .connecting(let request) = slots[link] {
                slots[link] = .free
                connectQueue.removeAll { $0 == link }
                if let request { finishConnect(request, .failure(SocketError(.init(error.reason), error.detail))) }
            }
        case .connect(let link, _, _), .connectSecure(let link, _, _):
            if case .connecting(let request) = slots[link] {
                slots[link] = .free
                if let request { finishConnect(request, .failure(SocketError(.init(error.reason)))) }
            }
        case .resolve:
            if let r = resolveActive {
                resolveActive = nil
                finishResolve(r, .failure(SocketError(.init(error.reason))))
            }
        case .close(let link):
            orphanCloses.remove(link)
            if case .open(let c) = slots[link], c.userClosed { slots[link] = .free }
        default:
            if case .initialising = phase {
                initStepFailed(command.kind, .init(error.reason), answer: "\(lastCommandText) could not be sent: \(String(describing: error.detail))")
            }
        }
    }

    func startRead(_ c: ConnectionRef) {
        let maximum = min(c.rx.room, engine.dialect.limits.maxReadLength, c.available)
        guard maximum > 0 else { return }
        c.readInFlight = true
        c.readAsked = maximum
        c.readGot = 0
        stats.reads += 1
        submit(.read(link: c.link, maximum: maximum))
        if engine.isIdle { c.readInFlight = false }
    }

    func startSend(_ c: ConnectionRef) {
        let limit = engine.maxSendChunk
        var result: Result<Int, ModemError> = .success(0)
        c.tx.withContiguousPrefix(limit: limit) { bytes in
            do throws(ModemError) {
                result = .success(try engine.send(bytes, link: c.link, now: now))
            } catch {
                result = .failure(error)
            }
        }
        switch result {
        case .success(let n):
            c.sendInFlight = n
        case .failure(let error):
            // The engine refused the send (the module closed the link): writes fail from now on.
            c.writeFailure = .closed
            c.tx.removeAll()
            incident = "the modem refused data on link \(c.link) (\(error.detail))"
            wake(c, read: false)
        }
    }

    typealias ConnectionRef = ATConnection
}
