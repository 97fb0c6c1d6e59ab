import GenTCPSerial
import GenTCP
import GenTCPCore
import GenTCPModem
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bring-up: the init sequence each dialect needs, SIM800 planned from `AT+CIPSTATUS`, retries and restarts.
extension ATCore {
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
    var bearerSteps: [ModemCommand] {
        var steps: [ModemCommand] = []
        if !configuration.apn.isEmpty || configuration.dialect == .sim800 {
            steps.append(.configureBearer(apn: configuration.apn, user: configuration.apnUser,
                                          password: configuration.apnPassword))
        }
        return steps + [.activateBearer, .localAddress]
    }

    /// Replaces the init steps after the current one with `rest`, and moves on.
    func continueInit(after step: Int, with rest: [ModemCommand]) {
        initSteps = Array(initSteps[0...step]) + rest
        phase = .initialising(step: step + 1)
    }

    /// The SIM800 bring-up from the state `AT+CIPSTATUS` reported: IP INITIAL takes everything
    /// (`AT+CIPMUX` is accepted there only); later states skip what is done once multi-link mode
    /// is confirmed; a state with stale links or a lost context is shut (`AT+CIPSHUT`) and asked
    /// again.
    func planSIM800(_ state: ModemBearerState?, step: Int) {
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

    func describe(_ state: ModemBearerState?) -> String {
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
    func planSIM800(multiplexing: Bool, step: Int) {
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

    // MARK: Initialisation

    func finishInit() {
        // What bring-up complained of (not attached yet, a step refused) is over.
        if incidentFromBringUp { incident = nil }
        incidentFromBringUp = false
        phase = .ready
        probesFailed = 0
        stats.initialisations += 1
        cancelPhaseTimer()
    }

    /// The reason a bring-up step's failure gives the connects waiting for it.
    func bringUpReason(_ command: ModemCommandKind, _ failure: ModemFailure, _ dialectReason: ModemReason)
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
    func initStepSucceeded(_ command: ModemCommandKind, step: Int) {
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

    func initStepFailed(_ kind: ModemCommandKind, _ reason: SocketError.Reason, answer: String,
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
    func restartModule(_ why: String) {
        stats.restarts += 1
        phase = .restarting
        submit(.restart)
        armPhaseTimer(configuration.restartTimeout.engineMilliseconds) { core in
            // No boot banner: the module is gone; start over from a probe.
            core.moduleLost(reason: .connectionTimedOut, dead: false,
                            incident: "\(why); no boot banner after a restart")
        }
    }

    func retryInitLater(milliseconds: UInt32? = nil) {
        phase = .waitingToRetry
        armPhaseTimer(milliseconds ?? configuration.retryDelay.engineMilliseconds) { core in
            let failed = core.probesFailed
            core.beginInit()
            core.probesFailed = failed
        }
    }

    func armPhaseTimer(_ milliseconds: UInt32, _ action: @escaping (ATCore) -> Void) {
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

    func cancelPhaseTimer() {
        if let t = phaseTimer { runtime.cancel(t) }
        phaseTimer = nil
    }
}
