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

    private var mutex = pthread_mutex_t()
    /// Work to do once the lock is released (resuming callers).
    private var deferred: [() -> Void] = []

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
        let address: SocketAddress
        let options: SocketOptions
        let delegate: any ConnectionDelegate
        let callerTimeout: Bool
        var continuation: UnsafeContinuation<Result<any Connection, SocketError>, Never>?
        var submitted = false
        var timer: TimerID?

        init(address: SocketAddress, options: SocketOptions, delegate: any ConnectionDelegate, callerTimeout: Bool,
             continuation: UnsafeContinuation<Result<any Connection, SocketError>, Never>) {
            self.address = address
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

    func start() {
        locked { core in
            guard core.phase == .idle else { return }
            core.link.setDelegate(core)
            core.link.armRead()
            core.beginInit()
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

    func beginInit() {
        var steps: [ModemCommand] = [.probe, .echoOff]
        switch configuration.dialect {
        case .espAT:
            steps += [.version, .enableMultiplexing, .enablePassiveReceive]
            if let wifi = configuration.wifi { steps.append(.joinNetwork(ssid: wifi.ssid, password: wifi.password)) }
            steps.append(.localAddress)
        case .sim800:
            // SIM ready, attached, then where the TCP/IP bring-up is (SIM800 AT manual §8,
            // AT+CIPSTATUS): the rest is planned from the state (``planSIM800``).
            steps += [.queryStatus(.sim), .queryStatus(.attach), .queryStatus(.bearer)]
        case .bg96:
            // SIM ready, attached, then the context: when AT+QIACT? shows it active with an
            // address, nothing more is needed (see `initStepSucceeded`).
            steps += [.queryStatus(.sim), .queryStatus(.attach), .localAddress]
        }
        initSteps = steps
        phase = .initialising(step: 0)
        probesFailed = 0
        shutsThisInit = 0
        bearerPlanned = false
        lastStatus = nil
        localIP = nil
    }

    /// `configureBearer`, `activateBearer`, `localAddress`. SIMCom needs `AT+CSTT` to leave
    /// IP INITIAL, so it is sent with an empty APN too (the module's answer says whether that is
    /// enough); Quectel keeps a configured context, so it is skipped without an APN.
    private var bearerSteps: [ModemCommand] {
        var steps: [ModemCommand] = []
        if !configuration.apn.isEmpty || configuration.dialect == .sim800 {
            steps.append(.configureBearer(apn: configuration.apn, user: configuration.apnUser,
                                          password: configuration.apnPassword))
        }
        return steps + [.activateBearer, .localAddress]
    }

    /// Replaces the init steps after the current one with `rest`, and moves on.
    private func continueInit(after step: Int, with rest: [ModemCommand]) {
        initSteps = Array(initSteps[0...step]) + rest
        phase = .initialising(step: step + 1)
    }

    /// The SIM800 bring-up from the state `AT+CIPSTATUS` reported: IP INITIAL takes everything
    /// (`AT+CIPMUX` is accepted there only); later states skip what is done once multi-link mode
    /// is confirmed; a state with stale links or a lost context is shut (`AT+CIPSHUT`) and asked
    /// again.
    private func planSIM800(_ state: ModemBearerState?, step: Int) {
        bearerState = state
        let shutAndAsk: [ModemCommand] = [.deactivateBearer, .queryStatus(.bearer)]
        switch state {
        case .initial?:
            continueInit(after: step, with: [.enableMultiplexing, .enablePassiveReceive] + bearerSteps)
        case .started?, .active?, .ready?:
            continueInit(after: step, with: [.queryStatus(.multiplexing)])
        case .configuring?, .linked?, .deactivated?, nil:
            shutsThisInit += 1
            guard shutsThisInit <= 2 else {
                let why = "modem bring-up failed: the module stays in \(describe(state)) after AT+CIPSHUT"
                failWaiters(.networkDown, incident: why)
                retryInitLater()
                return
            }
            continueInit(after: step, with: shutAndAsk)
        }
    }

    private func describe(_ state: ModemBearerState?) -> String {
        switch state {
        case .initial?: "IP INITIAL"
        case .started?: "IP START"
        case .configuring?: "IP CONFIG"
        case .active?: "IP GPRSACT"
        case .ready?: "IP STATUS"
        case .linked?: "a state with links"
        case .deactivated?: "PDP DEACT"
        case nil: "an unknown state"
        }
    }

    /// After `AT+CIPMUX?` on a SIM800 whose bearer is partly up: with multi-link mode on, go on
    /// from the state; without it, shut the stack and start from IP INITIAL.
    private func planSIM800(multiplexing: Bool, step: Int) {
        guard multiplexing else {
            continueInit(after: step, with: [.deactivateBearer, .queryStatus(.bearer)])
            return
        }
        switch bearerState {
        case .started?: continueInit(after: step, with: [.enablePassiveReceive, .activateBearer, .localAddress])
        default: continueInit(after: step, with: [.enablePassiveReceive, .localAddress])
        }
    }

    /// Steps whose failure does not stop initialisation.
    static func isOptional(_ command: ModemCommandKind) -> Bool {
        command == .version || command == .localAddress
    }

    // MARK: Link readiness

    func linkIsReadable(_ link: any SerialLink) {
        locked { core in core.readLink() }
    }

    func linkIsWritable(_ link: any SerialLink) {
        locked { core in
            core.linkWriteArmed = false
            core.pump()
        }
    }

    private func readLink() {
        guard phase != .dead else { return }
        var rounds = 0
        while rounds < 64 {
            rounds += 1
            let result = link.read(into: input)
            switch result {
            case .bytes(let n):
                if n > 0 { lastInput = runtime.now }
                let chunk = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[0..<n])
                var cursor = 0
                while let event = engine.nextEvent(reading: chunk, cursor: &cursor, now: now) {
                    handle(event)
                }
                pump()
                continue
            case .wouldBlock:
                link.armRead()
                pump()
                return
            case .hangUp, .failed:
                lineLost(result)
                return
            }
        }
        // Yield to others; come back at once.
        link.armRead()
        pump()
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
    private func updateLivenessTimer() {
        let interval = configuration.livenessInterval.nanoseconds ?? 0
        let watched = phase == .ready && interval > 0 && slots.contains { slot in
            if case .open(let c) = slot { return !c.ended && !c.userClosed }
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
    private func askAvailability() {
        guard phase == .ready else { return }
        for link in 0..<slots.count {
            if case .open(let c) = slots[link], !c.ended, !c.userClosed, !c.readInFlight, c.available == 0,
               !availabilityQueue.contains(link) {
                availabilityQueue.append(link)
            }
        }
        // The queries are input too: the next check is an interval after their answers.
        lastInput = runtime.now
    }

    private func flushOutput() {
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

    private func updateEngineTimer() {
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
    private func nextWork() -> (() -> Void)? {
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
        if let link = connectQueue.first, case .connecting(let request?) = slots[link] {
            connectQueue.removeFirst()
            return { [self] in
                request.submitted = true
                let host = request.address.address.description
                submit(.connect(link: link, host: host, port: request.address.port))
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

    private func submit(_ command: ModemCommand, timeout: UInt32? = nil) {
        do throws(ModemError) {
            try engine.submit(command, now: now, timeout: timeout)
        } catch {
            failedToSubmit(command, error)
        }
    }

    /// A command the engine refused (a bad argument, mostly): treated as its failure.
    private func failedToSubmit(_ command: ModemCommand, _ error: ModemError) {
        switch command {
        case .connect(let link, _, _):
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

    private func startRead(_ c: ConnectionRef) {
        let maximum = min(c.rx.room, engine.dialect.limits.maxReadLength, c.available)
        guard maximum > 0 else { return }
        c.readInFlight = true
        c.readAsked = maximum
        c.readGot = 0
        stats.reads += 1
        submit(.read(link: c.link, maximum: maximum))
        if engine.isIdle { c.readInFlight = false }
    }

    private func startSend(_ c: ConnectionRef) {
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

    // MARK: Initialisation

    private func finishInit() {
        // What bring-up complained of (not attached yet, a step refused) is over.
        if incidentFromBringUp { incident = nil }
        incidentFromBringUp = false
        phase = .ready
        probesFailed = 0
        stats.initialisations += 1
        cancelPhaseTimer()
    }

    /// The reason a bring-up step's failure gives the connects waiting for it.
    private func bringUpReason(_ command: ModemCommandKind, _ failure: ModemFailure, _ dialectReason: ModemReason)
        -> SocketError.Reason {
        if failure == .timeout || failure == .busy { return .connectionTimedOut }
        switch command {
        case .queryStatus: return .networkDown
        case .configureBearer, .activateBearer, .deactivateBearer, .joinNetwork: return .networkUnreachable
        case .echoOff, .enableMultiplexing, .enablePassiveReceive: return .protocolError
        default: return .init(dialectReason)
        }
    }

    /// A bring-up step answered `OK`: check what it reported, plan what follows, move on.
    private func initStepSucceeded(_ command: ModemCommandKind, step: Int) {
        let current = initSteps[step]
        if command == .probe { probesFailed = 0 }
        switch current {
        case .queryStatus(.sim):
            if case .simReady(let ready)? = lastStatus, !ready {
                initStepFailed(.queryStatus, .networkDown, answer: "the SIM is not ready (\(lastStatusLine))")
                return
            }
        case .queryStatus(.attach):
            if case .attached(let attached)? = lastStatus, !attached {
                // Not (yet) attached: common for a while after power-on. Waiters keep waiting
                // within their own timeouts, with the reason on record.
                incident = "the modem is not attached to the packet network (\(lastStatusLine))"
                incidentFromBringUp = true
                retryInitLater(milliseconds: max(configuration.retryDelay.engineMilliseconds, 1_000))
                return
            }
        case .queryStatus(.bearer):
            // SIMCom prints the state after the OK.
            phase = .awaitingState(step: step)
            armPhaseTimer(max(configuration.probeTimeout.engineMilliseconds, 1_000)) { core in
                guard case .awaitingState(let step) = core.phase else { return }
                core.planSIM800(nil, step: step)
            }
            return
        case .queryStatus(.multiplexing):
            if case .multiplexing(let on)? = lastStatus {
                planSIM800(multiplexing: on, step: step)
            } else {
                planSIM800(multiplexing: false, step: step)
            }
            return
        case .localAddress where configuration.dialect == .espAT:
            // ESP-AT prints STAIP "0.0.0.0" while the station has not joined a network: every
            // connect out would fail with a bare ERROR, which would read as a refused host.
            if localIP == .v4(0) {
                initStepFailed(.localAddress, .networkUnreachable,
                               answer: "the module has not joined a Wi-Fi network (+CIFSR:STAIP,\"0.0.0.0\"); "
                               + "join one (AT+CWJAP, or the board profile's wifi)", optional: false)
                return
            }
        case .localAddress where configuration.dialect == .bg96 && !bearerPlanned:
            bearerPlanned = true
            if localIP == nil {
                continueInit(after: step, with: bearerSteps)
                return
            }
        default:
            break
        }
        phase = .initialising(step: step + 1)
    }

    private func initStepFailed(_ kind: ModemCommandKind, _ reason: SocketError.Reason, answer: String,
                                optional: Bool? = nil) {
        let step: Int
        switch phase {
        case .initialising(let s), .awaitingState(let s): step = s
        default: return
        }
        if optional ?? ATCore.isOptional(kind) {
            phase = .initialising(step: step + 1)
            return
        }
        if kind == .probe {
            probesFailed += 1
            if probesFailed >= configuration.probeAttempts {
                // Still silent (or busy): nobody waiting should wait longer for it. Restart it,
                // then start over after the banner (or the timeout).
                let why = "the modem does not answer AT (\(probesFailed) probes: \(answer))"
                probesFailed = 0
                failWaiters(.connectionTimedOut, incident: why)
                restartModule(why)
                return
            }
            retryInitLater()
            return
        }
        // A step the module refused: what waits for the module fails now, naming the step and the
        // answer; the next connect starts over from the probe (after a pause).
        let why = "modem bring-up failed: \(answer)"
        failWaiters(reason, incident: why)
        retryInitLater()
    }

    /// Sends `AT+RST` (or the dialect's restart) and waits for the boot banner; without one
    /// within ``ATConfiguration/restartTimeout`` the module is taken for gone.
    private func restartModule(_ why: String) {
        stats.restarts += 1
        phase = .restarting
        submit(.restart)
        armPhaseTimer(configuration.restartTimeout.engineMilliseconds) { core in
            // No boot banner: the module is gone; start over from a probe.
            core.moduleLost(reason: .connectionTimedOut, dead: false,
                            incident: "\(why); no boot banner after a restart")
        }
    }

    private func retryInitLater(milliseconds: UInt32? = nil) {
        phase = .waitingToRetry
        armPhaseTimer(milliseconds ?? configuration.retryDelay.engineMilliseconds) { core in
            let failed = core.probesFailed
            core.beginInit()
            core.probesFailed = failed
        }
    }

    private func armPhaseTimer(_ milliseconds: UInt32, _ action: @escaping (ATCore) -> Void) {
        cancelPhaseTimer()
        let box = UncheckedAction(action)
        phaseTimer = runtime.schedule(afterNanoseconds: UInt64(milliseconds) * 1_000_000) { [weak self] in
            self?.locked { core in
                core.phaseTimer = nil
                box.action(core)
                core.pump()
            }
        }
    }

    private func cancelPhaseTimer() {
        if let t = phaseTimer { runtime.cancel(t) }
        phaseTimer = nil
    }

    // MARK: Events

    private func handle(_ event: ModemEvent) {
        switch event {
        case .commandCompleted(let completion):
            completed(completion)
        case .connected(let link):
            connected(link)
        case .connectFailed(let link, let reason):
            guard case .connecting(let request) = slots[link] else { return }
            slots[link] = .free
            if let request {
                let r: SocketError.Reason = request.callerTimeout && (reason == .connectionTimedOut || reason == .timeout)
                    ? .timeout : .init(reason)
                finishConnect(request, .failure(SocketError(r)))
            }
        case .closed(let link):
            orphanCloses.remove(link)
            guard case .open(let c) = slots[link] else { return }
            // Quectel keeps the id until QICLOSE; the others free it with the close.
            c.moduleOpen = engine.linkState(link) != .closed
            linkClosedByModule(c)
            if c.userClosed && !c.moduleOpen { slots[link] = .free }
        case .dataAvailable(let link, let length):
            guard case .open(let c) = slots[link] else { return }
            if let length {
                // The module's total; bytes of a read in flight that already arrived are not in it.
                c.available = max(0, length)
            } else {
                c.available = Int.max
            }
        case .received(let link, let bytes):
            received(link, bytes)
        case .resolved(let address):
            resolveActive?.addresses.append(IPAddress(address))
            if engine.dialect.resolvesAsynchronously, let r = resolveActive {
                resolveActive = nil
                finishResolve(r, .success(r.addresses))
            }
        case .resolveFailed(let reason):
            if let r = resolveActive {
                resolveActive = nil
                finishResolve(r, .failure(SocketError(.init(reason))))
            }
        case .localAddress(let address):
            localIP = IPAddress(address)
        case .version:
            break
        case .status(let status):
            lastStatus = status
            lastStatusLine = lastLineText
            if case .bearer(let state) = status, case .awaitingState(let step) = phase {
                cancelPhaseTimer()
                planSIM800(state, step: step)
            }
        case .network(let news):
            if news == .bearerLost {
                // The engine reports every open link closed next, and nothing more comes for
                // them: whatever the module still held is gone.
                failOpenConnections(.connectionAborted, incident: "the modem lost its packet bearer (\(lastLineText))")
            }
        case .moduleReset:
            moduleReset()
        case .unrecognisedLine:
            stats.unrecognisedLines += 1
        case .framingError(let error):
            stats.framingErrors += 1
            framingError(error)
        }
    }

    /// The module's last line, as text (for incidents).
    private var lastLineText: String {
        engine.withLastLine { line in String(decoding: line.bytes, as: UTF8.self) }
    }

    /// The last command line, as text (for incidents).
    private var lastCommandText: String {
        engine.withLastCommand { bytes in String(decoding: bytes, as: UTF8.self) }
    }

    /// "AT+CIICR answered ERROR", "AT got no answer": the failed command and what the module said.
    private func describe(_ failure: ModemFailure) -> String {
        let command = lastCommandText
        switch failure {
        case .timeout: return "\(command) got no answer"
        case .busy: return "\(command) answered busy p... on every retry"
        case .moduleReset: return "the modem restarted during \(command)"
        default: return "\(command) answered \(lastLineText)"
        }
    }

    private func completed(_ completion: ModemCompletion) {
        let failure: (ModemFailure, ModemReason)?
        if case .failure(let f, let r) = completion.outcome { failure = (f, r) } else { failure = nil }

        if case .initialising(let step) = phase, step < initSteps.count, initSteps[step].kind == completion.command {
            if let failure {
                initStepFailed(completion.command, bringUpReason(completion.command, failure.0, failure.1),
                               answer: describe(failure.0))
            } else {
                initStepSucceeded(completion.command, step: step)
            }
            return
        }
        switch completion.command {
        case .probe:
            if failure?.0 == .timeout {
                needRestart = true
            } else if failure?.0 != .moduleReset {
                // Alive and not restarted: the connections it left unanswered failed on silence.
                if let silence { failAwaitingVerdict(.connectionTimedOut, incident: silence) }
                silence = nil
            }
        case .restart:
            if failure != nil, phase == .restarting {
                moduleLost(reason: .connectionTimedOut, dead: false,
                           incident: "the modem does not answer; no boot banner after a restart")
            }
        case .read:
            guard let link = completion.link, case .open(let c) = slots[link] else { break }
            c.readInFlight = false
            if let failure {
                // An answer that did not end in OK is not trusted: its bytes are taken back.
                takeBackUnconfirmed(c)
                if failure.0 == .timeout {
                    // The stream has a hole either way; the probe that follows tells a restart
                    // (echo back on, a banner) from plain silence, and names it.
                    silence = "the modem did not answer \(lastCommandText) in time"
                    c.awaitingVerdict = true
                } else if c.peerClosed, c.available != Int.max, c.available > 0 {
                    fail(c, .protocolError, incident: "the modem closed link \(link) announcing \(c.available) bytes, "
                         + "then refused to deliver them (\(describe(failure.0)))")
                }
                c.available = 0
            } else {
                c.rx.commit()
                if c.readGot < c.readAsked { c.available = 0 }
            }
            if c.peerClosed, !c.ended, c.available == 0 { endConnection(c, nil) }
            if c.readGot > 0 { wake(c, read: true) }
        case .send:
            guard let link = completion.link, case .open(let c) = slots[link] else { break }
            let n = c.sendInFlight
            c.sendInFlight = 0
            if let failure {
                if failure.0 == .timeout {
                    silence = "the modem did not confirm \(lastCommandText) in time"
                    c.awaitingVerdict = true
                    c.tx.removeAll()
                } else if failure.1 == .tryAgain, c.sendRetries < ATCore.maxSendRetries {
                    // Quectel's SEND FAIL: its send buffer is full; the bytes stay ours, and go
                    // again after a pause (TCP/IP AT Commands Manual, AT+QISEND).
                    c.sendRetries += 1
                    c.sendHeld = true
                    _ = runtime.schedule(afterNanoseconds: ATCore.sendRetryDelay) { [weak self, weak c] in
                        guard let self, let c else { return }
                        self.locked { core in
                            c.sendHeld = false
                            core.pump()
                        }
                    }
                } else {
                    // SEND FAIL or ERROR: the bytes did not go. Writes fail from now on (bytes
                    // already accepted are lost, as behind a reset TCP connection); reads go on
                    // until the module reports the link closed.
                    c.writeFailure = .closed
                    c.tx.removeAll()
                    incident = "the modem refused data on link \(link) (\(describe(failure.0)))"
                    wake(c, read: false)
                }
            } else {
                c.sendRetries = 0
                c.tx.drop(n)
                stats.payloadOut += n
                wake(c, read: false)
            }
        case .close:
            guard let link = completion.link else { break }
            orphanCloses.remove(link)
            if case .open(let c) = slots[link], c.userClosed {
                c.moduleOpen = false
                slots[link] = .free
            }
        case .resolve:
            guard let r = resolveActive else { break }
            if let failure {
                resolveActive = nil
                finishResolve(r, .failure(SocketError(.init(failure.1))))
            } else if !engine.dialect.resolvesAsynchronously {
                resolveActive = nil
                finishResolve(r, r.addresses.isEmpty ? .failure(SocketError(.nonExistentDomain)) : .success(r.addresses))
            }
        default:
            break
        }
        // A command the module never answered, while it should be alive: is it still there?
        if let failure, failure.0 == .timeout, phase == .ready,
           completion.command != .connect, completion.command != .resolve, completion.command != .probe {
            if silence == nil { silence = "\(describe(failure.0))" }
            needProbe = true
        }
    }

    private func connected(_ link: Int) {
        guard case .connecting(let request) = slots[link] else {
            // Nobody asked for it (or it was reported twice): close it.
            if case .free = slots[link] { orphanCloses.insert(link) }
            return
        }
        guard let request, let continuation = request.continuation else {
            slots[link] = .free
            orphanCloses.insert(link)
            return
        }
        let receive = min(max(1, request.options.buffer), configuration.maxReceiveBuffer)
        let local = localIP.map { SocketAddress($0, port: 0) }
        let c = ATConnection(core: self, link: link, remote: request.address, local: local,
                             delegate: request.delegate, receiveBuffer: receive, sendBuffer: sendBufferSize)
        stats.largestReceiveBuffer = max(stats.largestReceiveBuffer, c.rx.capacity)
        stats.largestSendBuffer = max(stats.largestSendBuffer, c.tx.capacity)
        slots[link] = .open(c)
        request.continuation = nil
        if let t = request.timer { runtime.cancel(t) }
        deferred.append { continuation.resume(returning: .success(c)) }
    }

    private func received(_ link: Int, _ bytes: UnsafeRawBufferPointer) {
        guard case .open(let c) = slots[link], !c.userClosed, !c.ended else {
            stats.overflowBytes += bytes.count
            return
        }
        if !engine.isReceivingPushedPayload && !c.readInFlight {
            // The rest of a read's answer that already ended (timed out): not trusted.
            stats.unconfirmedBytes += bytes.count
            return
        }
        if engine.isReceivingPushedPayload {
            // Pushed data (`+IPD,<id>,<len>:`) although passive receive was asked: the module
            // reverted (or never took the mode). Its bytes are part of the stream: keep them in
            // order while they fit, fail the socket when they do not; ask for passive again.
            stats.pushedBytes += bytes.count
            needPassiveRestore = true
            let taken = c.rx.append(bytes)
            stats.payloadIn += taken
            if taken < bytes.count {
                stats.overflowBytes += bytes.count - taken
                fail(c, .protocolError, incident: "the modem pushed data on link \(link) (+IPD) in passive receive "
                     + "mode, \(bytes.count - taken) bytes more than the buffer holds")
            } else {
                wake(c, read: true)
            }
            return
        }
        // Never more than was asked (which was never more than the room): the module's numbers
        // do not size anything here. Held back until the read's final result: a module that
        // restarts in the middle of an answer would otherwise have its boot banner counted as
        // payload and handed to the program.
        let allowed = min(c.readAsked - c.readGot, c.rx.room)
        let taken = c.rx.append(UnsafeRawBufferPointer(rebasing: bytes[0..<min(allowed, bytes.count)]), hide: true)
        c.readGot += taken
        stats.payloadIn += taken
        if c.available != Int.max { c.available = max(0, c.available - bytes.count) }
        if taken < bytes.count {
            stats.overflowBytes += bytes.count - taken
            fail(c, .protocolError, incident: "the modem answered a read on link \(link) with more bytes than asked")
        }
    }

    /// A header or line the lexer refused: if a read was in flight, its answer (and the bytes it
    /// carried) is lost, so that stream has a hole; a refused payload header with no read in
    /// flight was pushed data for a link nobody can tell, so every stream may have one.
    private func framingError(_ error: ATLexerError) {
        let what: String
        switch error {
        case .lineTooLong: what = "a line longer than \(engine.configuration.maxLineLength) bytes"
        case .payloadTooLong(let n): what = "a payload header announcing \(n) bytes"
        case .malformedHeader: what = "a payload header that does not parse"
        }
        if let link = engine.readInFlightLink {
            if case .open(let c) = slots[link] {
                fail(c, .protocolError, incident: "the modem answered \(lastCommandText) with \(what); its data is lost")
            }
            return
        }
        guard error != .lineTooLong else {
            // A long line outside a read carries no payload, but it may have been a data notice
            // (`+IPD,<id>,<len>`): ask every link again rather than wait for one that will not
            // come.
            askAvailability()
            return
        }
        failOpenConnections(.protocolError, incident: "the modem sent \(what); data for an unknown link is lost")
    }

    /// The module reported the link closed. Bytes it announced and still holds are read first
    /// (SIMCom and Quectel keep a closed link readable; ESP-AT holds `CLOSED` back until they
    /// were read); then the stream ends. A bearer loss leaves nothing to read: that is an error.
    private func linkClosedByModule(_ c: ATConnection) {
        guard !c.ended else { return }
        c.peerClosed = true
        c.tx.removeAll()
        if c.available == 0 && !c.readInFlight {
            endConnection(c, nil)
        } else {
            wake(c, read: false)
        }
    }

    // MARK: Failures

    private func moduleReset() {
        // The engine already failed what was in flight and reports every link closed next.
        var banner = lastLineText
        if banner == lastCommandText { banner = "it echoes commands again" }
        // News only when it broke something (or ends a silence being probed): the banner at
        // power-on, or after the driver's own restart, is expected.
        let affected = slots.contains { slot in
            switch slot {
            case .open(let c): return !c.ended && !c.userClosed
            case .connecting(let request?): return request.submitted
            default: return false
            }
        }
        if affected {
            incident = "the modem restarted (\(banner))"
            incidentFromBringUp = false
        } else if let silence {
            // Connections already failed on the silence that was the restart.
            incident = "the modem restarted (\(banner)); before that, \(silence)"
            incidentFromBringUp = false
        }
        for link in 0..<slots.count {
            if case .open(let c) = slots[link] {
                c.moduleOpen = false
                fail(c, .connectionAborted, incident: nil)
                slots[link] = .free
            }
        }
        orphanCloses.removeAll()
        cancelPhaseTimer()
        needProbe = false
        needRestart = false
        needPassiveRestore = false
        silence = nil
        requeueConnects()
        beginInit()
    }

    /// Connects that were submitted when the module went away are lost; queued ones wait for the
    /// next initialisation.
    private func requeueConnects() {
        for link in 0..<slots.count {
            if case .connecting(let request) = slots[link] {
                if let request, !request.submitted {
                    continue
                }
                slots[link] = .free
                if let request {
                    finishConnect(request, .failure(SocketError(.connectionAborted, "the modem restarted")))
                }
            }
        }
        connectQueue = connectQueue.filter { if case .connecting(.some) = slots[$0] { true } else { false } }
    }

    /// The serial line hung up or failed: the driver stops for good.
    private func lineLost(_ result: LinkIO) {
        let reason = result.lossReason ?? .ioError
        let why: String
        switch result {
        case .failed(let r) where r != .closed: why = "the serial line failed (\(r.atom))"
        default: why = "the serial line hung up"
        }
        moduleLost(reason: reason, dead: true, incident: why)
    }

    /// The module stopped answering (restart timed out), the line failed or the driver stopped:
    /// every connection fails with `reason`, every waiter too. With `dead`, the driver stops for
    /// good; otherwise it starts over with a fresh engine.
    func moduleLost(reason: SocketError.Reason, dead: Bool, incident why: String?) {
        if phase == .dead { return }
        let lostDetail: StaticString = stopped ? "the at driver was stopped" : ATCore.staticDetail(reason)
        stats.moduleLost += 1
        if let why {
            incident = why
            incidentFromBringUp = false
        }
        for link in 0..<slots.count {
            switch slots[link] {
            case .open(let c):
                c.moduleOpen = false
                fail(c, reason, incident: nil)
            case .connecting(let request):
                // Queued connects wait for the next initialisation, within their own timeouts.
                if !dead, let request, !request.submitted { continue }
                if let request { finishConnect(request, .failure(SocketError(reason, lostDetail))) }
            case .free:
                break
            }
            slots[link] = .free
        }
        connectQueue = connectQueue.filter { if case .connecting(.some) = slots[$0] { true } else { false } }
        orphanCloses.removeAll()
        if let r = resolveActive {
            resolveActive = nil
            finishResolve(r, .failure(SocketError(reason, lostDetail)))
        }
        if dead {
            for r in resolveQueue { finishResolve(r, .failure(SocketError(reason, lostDetail))) }
            resolveQueue.removeAll()
        }
        cancelPhaseTimer()
        if let t = engineTimer { runtime.cancel(t) }
        engineTimer = nil
        engineTimerDeadline = nil
        if let t = livenessTimer { runtime.cancel(t) }
        livenessTimer = nil
        availabilityQueue.removeAll()
        needProbe = false
        needRestart = false
        needPassiveRestore = false
        silence = nil
        linkWriteArmed = false
        engine = ModemEngine(dialect: configuration.dialect.makeDialect(), configuration: configuration.engine)
        if dead {
            phase = .dead
        } else {
            retryInitLater()
        }
    }

    /// Fails the connections whose command went unanswered, once the probe has spoken.
    private func failAwaitingVerdict(_ reason: SocketError.Reason, incident why: String) {
        for link in 0..<slots.count {
            if case .open(let c) = slots[link], c.awaitingVerdict {
                c.awaitingVerdict = false
                fail(c, reason, incident: why)
            }
        }
    }

    /// Fails every open connection with `reason` (buffered bytes are still read first).
    private func failOpenConnections(_ reason: SocketError.Reason, incident why: String) {
        incident = why
        incidentFromBringUp = false
        for link in 0..<slots.count {
            if case .open(let c) = slots[link] { fail(c, reason, incident: nil) }
        }
    }

    /// Fails the connects and lookups waiting for the module (not the open connections): the
    /// module cannot be brought up, so nobody should wait for their own timeout.
    private func failWaiters(_ reason: SocketError.Reason, incident why: String) {
        incident = why
        incidentFromBringUp = true
        for link in 0..<slots.count {
            if case .connecting(let request?) = slots[link], !request.submitted {
                slots[link] = .free
                finishConnect(request, .failure(SocketError(reason, ATCore.staticDetail(reason))))
            }
        }
        connectQueue = connectQueue.filter { if case .connecting(.some) = slots[$0] { true } else { false } }
        for r in resolveQueue { finishResolve(r, .failure(SocketError(reason, ATCore.staticDetail(reason)))) }
        resolveQueue.removeAll()
    }

    /// How often a send the module had no room for (Quectel `SEND FAIL`) is tried again.
    static let maxSendRetries = 50
    /// The pause before it is, in ns.
    static let sendRetryDelay: UInt64 = 200_000_000

    /// What a connect or lookup on a dead driver gets: `enetdown`, after ``stop()`` or a lost line.
    static func deadError(stopped: Bool) -> SocketError {
        stopped ? SocketError(.networkDown, "the at driver was stopped") : SocketError(.networkDown, "the modem link is closed")
    }

    /// A short static note for errors the module caused (the sentence is in ``lastIncident``).
    static func staticDetail(_ reason: SocketError.Reason) -> StaticString {
        switch reason {
        case .connectionAborted: "the modem restarted or lost its link; see the driver's lastIncident"
        case .connectionTimedOut: "the modem stopped answering; see the driver's lastIncident"
        case .ioError: "the serial line hung up or failed"
        case .protocolError: "the modem broke its framing; see the driver's lastIncident"
        case .closed: "the driver was stopped"
        default: "modem bring-up failed; see the driver's lastIncident"
        }
    }

    /// The connection's stream is broken: reads give what is buffered, then `failed(reason)`;
    /// writes fail; the module's link is closed. `incident`, when given, says what happened.
    private func fail(_ c: ATConnection, _ reason: SocketError.Reason, incident why: String?) {
        if let why {
            incident = why
            incidentFromBringUp = false
        }
        if c.failure == nil && !c.ended { c.failure = reason }
        // The read in flight (if any) never finished: what it brought is not trusted.
        takeBackUnconfirmed(c)
        c.readInFlight = false
        c.sendInFlight = 0
        c.tx.removeAll()
        if c.moduleOpen { orphanCloses.insert(c.link) }
        endConnection(c, reason)
    }

    /// Takes back the bytes of a read answer that never ended in `OK` (held back in `rx`).
    private func takeBackUnconfirmed(_ c: ATConnection) {
        let dropped = c.rx.dropHidden()
        c.readGot -= dropped
        stats.payloadIn -= dropped
        stats.unconfirmedBytes += dropped
    }

    private func endConnection(_ c: ATConnection, _ reason: SocketError.Reason?) {
        c.ended = true
        c.peerClosed = false
        if let reason, c.failure == nil { c.failure = reason }
        c.readInFlight = false
        wake(c, read: true)
        wake(c, read: false)
    }

    // MARK: Readiness for the port

    private func wake(_ c: ATConnection, read: Bool) {
        if read {
            guard c.wantRead, !c.rx.isEmpty || c.ended else { return }
            c.wantRead = false
        } else {
            guard c.wantWrite, c.tx.room > 0 || c.ended || c.peerClosed || c.writeFailure != nil else { return }
            c.wantWrite = false
        }
        post(c, read: read)
    }

    /// Tells the port from the runtime's context, never from inside one of its calls.
    private func post(_ c: ATConnection, read: Bool) {
        _ = runtime.schedule(afterNanoseconds: 0) { [weak c] in
            guard let c else { return }
            let delegate: (any ConnectionDelegate)? = c.core.locked { _ in c.userClosed ? nil : c.delegate }
            if read { delegate?.connectionReadable() } else { delegate?.connectionWritable() }
        }
    }

    // MARK: Connection calls (under the lock)

    func read(_ c: ATConnection, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if !c.rx.isEmpty {
            let wasFull = c.rx.room == 0
            let n = c.rx.remove(into: buffer)
            if c.wantsModuleRead || wasFull { pump() }
            return .bytes(n)
        }
        if c.ended {
            if let failure = c.failure { return .failed(failure) }
            return .endOfStream
        }
        if c.wantsModuleRead { pump() }
        return .wouldBlock
    }

    func write(_ c: ATConnection, _ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        if c.userClosed { return .failed(.closed) }
        if c.ended || c.peerClosed || c.writeFailure != nil { return .failed(c.writeFailure ?? c.failure ?? .closed) }
        var total = 0
        for chunk in chunks {
            let n = c.tx.append(chunk)
            total += n
            if n < chunk.count { break }
        }
        guard total > 0 else { return .wouldBlock }
        if c.wantsModuleSend { pump() }
        return .bytes(total)
    }

    func armRead(_ c: ATConnection) {
        if !c.rx.isEmpty || c.ended {
            c.wantRead = false
            post(c, read: true)
        } else {
            c.wantRead = true
        }
    }

    func armWrite(_ c: ATConnection) {
        if c.tx.room > 0 || c.ended || c.peerClosed || c.writeFailure != nil {
            c.wantWrite = false
            post(c, read: false)
        } else {
            c.wantWrite = true
        }
    }

    func close(_ c: ATConnection, abortive: Bool) {
        guard !c.userClosed else { return }
        c.userClosed = true
        c.abortive = abortive || c.ended
        c.delegate = nil
        c.wantRead = false
        c.wantWrite = false
        c.rx.removeAll()
        if abortive { c.tx.removeAll() }
        guard case .open(let current) = slots[c.link], current === c else { return }
        if engine.linkState(c.link) == .closed, c.sendInFlight == 0 {
            c.moduleOpen = false
            slots[c.link] = .free
        }
        pump()
    }

    // MARK: Connect and resolve

    func connect(to address: SocketAddress, options: SocketOptions, timeoutNanoseconds: UInt64?,
                 delegate: any ConnectionDelegate) async throws(SocketError) -> any Connection {
        let result: Result<any Connection, SocketError> = await withUnsafeContinuation { continuation in
            locked { core in
                core.startConnect(address, options, timeoutNanoseconds, delegate, continuation)
            }
        }
        return try result.get()
    }

    private func startConnect(_ address: SocketAddress, _ options: SocketOptions, _ timeoutNanoseconds: UInt64?,
                              _ delegate: any ConnectionDelegate,
                              _ continuation: UnsafeContinuation<Result<any Connection, SocketError>, Never>) {
        if phase == .idle {
            link.setDelegate(self)
            link.armRead()
            beginInit()
        }
        guard phase != .dead else {
            deferred.append { [stopped] in continuation.resume(returning: .failure(ATCore.deadError(stopped: stopped))) }
            return
        }
        guard (1...65_535).contains(address.port) else {
            // Nothing listens on port 0 (the modules refuse it before trying).
            deferred.append { continuation.resume(returning: .failure(SocketError(.connectionRefused, "port 0"))) }
            return
        }
        // Every link id is either free in the module or waits for its close.
        guard let link = (0..<slots.count).first(where: { l in
            if case .free = slots[l], engine.linkState(l) == .closed, !orphanCloses.contains(l) { return true }
            return false
        }) else {
            deferred.append { continuation.resume(returning: .failure(SocketError(.systemLimit, "every modem link is in use"))) }
            return
        }
        let request = ConnectRequest(address: address, options: options, delegate: delegate,
                                     callerTimeout: timeoutNanoseconds != nil, continuation: continuation)
        slots[link] = .connecting(request)
        connectQueue.append(link)
        // No caller timeout and an infinite connectTimeout: no timer.
        if let limit = timeoutNanoseconds ?? configuration.connectTimeout.nanoseconds {
            request.timer = runtime.schedule(afterNanoseconds: limit) { [weak self, weak request] in
                guard let self, let request else { return }
                self.locked { core in core.connectTimedOut(link, request) }
            }
        }
        pump()
    }

    private func connectTimedOut(_ link: Int, _ request: ConnectRequest) {
        guard case .connecting(let current?) = slots[link], current === request else { return }
        let reason: SocketError.Reason = request.callerTimeout ? .timeout : .connectionTimedOut
        if request.submitted {
            // The module is still connecting: forget the caller, close the link when it answers.
            slots[link] = .connecting(nil)
        } else {
            slots[link] = .free
            connectQueue.removeAll { $0 == link }
        }
        finishConnect(request, .failure(SocketError(reason)))
    }

    private func finishConnect(_ request: ConnectRequest, _ result: Result<any Connection, SocketError>) {
        if let t = request.timer { runtime.cancel(t) }
        request.timer = nil
        guard let continuation = request.continuation else { return }
        request.continuation = nil
        deferred.append { continuation.resume(returning: result) }
    }

    func resolve(_ host: String) async throws(SocketError) -> [IPAddress] {
        // Strings that could inject AT are refused here, before anything is queued or written.
        // A name longer than the module takes cannot be looked up there: nxdomain, as for a
        // name no server knows (checked after the injection check, which wins).
        do throws(ModemError) {
            try ModemValidation.check(host, maxLength: Int.max)
        } catch {
            throw SocketError(.init(error.reason), error.detail)
        }
        if host.utf8.count > configuration.dialect.makeDialect().limits.maxHostLength {
            throw SocketError(.nonExistentDomain, "name longer than the module takes")
        }
        do throws(ModemError) {
            try ModemValidation.check(host, maxLength: configuration.dialect.makeDialect().limits.maxHostLength)
        } catch {
            throw SocketError(.init(error.reason), error.detail)
        }
        let result: Result<[IPAddress], SocketError> = await withUnsafeContinuation { continuation in
            locked { core in core.startResolve(host, continuation) }
        }
        return try result.get()
    }

    private func startResolve(_ host: String, _ continuation: UnsafeContinuation<Result<[IPAddress], SocketError>, Never>) {
        if phase == .idle {
            link.setDelegate(self)
            link.armRead()
            beginInit()
        }
        guard phase != .dead else {
            deferred.append { [stopped] in continuation.resume(returning: .failure(ATCore.deadError(stopped: stopped))) }
            return
        }
        guard resolveQueue.count < slots.count else {
            deferred.append { continuation.resume(returning: .failure(SocketError(.systemLimit, "too many lookups waiting"))) }
            return
        }
        let request = ResolveRequest(host: host, continuation: continuation)
        resolveQueue.append(request)
        // An infinite resolveTimeout: no timer.
        if let limit = configuration.resolveTimeout.nanoseconds {
            request.timer = runtime.schedule(afterNanoseconds: limit) { [weak self, weak request] in
                guard let self, let request else { return }
                self.locked { core in
                    core.resolveQueue.removeAll { $0 === request }
                    core.finishResolve(request, .failure(SocketError.timeout))
                }
            }
        }
        pump()
    }

    private func finishResolve(_ request: ResolveRequest, _ result: Result<[IPAddress], SocketError>) {
        if let t = request.timer { runtime.cancel(t) }
        request.timer = nil
        guard let continuation = request.continuation else { return }
        request.continuation = nil
        deferred.append { continuation.resume(returning: result) }
    }
}

/// A closure carried into a `@Sendable` timer action; it only ever runs under the core's lock.
private final class UncheckedAction: @unchecked Sendable {
    let action: (ATCore) -> Void
    init(_ action: @escaping (ATCore) -> Void) { self.action = action }
}
