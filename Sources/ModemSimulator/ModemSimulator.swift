import GenTCP
import GenTCPCore
import GenTCPTLS
import Synchronization

/// A serial AT-command modem, simulated: ESP-AT, SIMCom SIM800 or Quectel BG96, answering as
/// the vendors document, with its TCP links bridged to GenTCP sockets on any driver.
///
/// The host side is a byte stream: write what the host sends with ``input(_:)-([UInt8])``;
/// everything the module says goes to the `output` closure, in order, never two calls at once.
/// Delays (boot, fragmentation, UART pacing) run on the driver's runtime, so with
/// `.sim(net, host:)` the module lives on the simulated network's virtual clock and a seed
/// replays byte for byte.
///
/// ```swift
/// let modem = ModemSimulator(.espAT(firmware: "3.3.0.0"), driver: .posix) { bytes in uart.write(bytes) }
/// modem.powerOn()                       // "\r\nready\r\n" after the boot delay
/// modem.input(Array("AT+CIPMUX=1\r\n".utf8))
/// ```
///
/// Each link the host opens is a GenTCP process owning one socket: a `Socket` for TCP, a
/// `UDPSocket` bound to loopback for UDP (the driver must be a `DatagramDriver`). In passive receive the
/// process reads only while the module's per-link buffer has room, so a host that does not
/// read backpressures the far peer through TCP.
public final class ModemSimulator: Sendable {
    /// The dialect, firmware, buffers, faults and seed the module was made with.
    public let configuration: ModemSimulatorConfiguration
    /// The driver the module's links use.
    public let driver: any Driver
    private let sink: @Sendable ([UInt8]) -> Void
    private let vanishHandler = Mutex<(@Sendable () -> Void)?>(nil)
    let state: Mutex<SimState>

    /// - Parameters:
    ///   - configuration: dialect, firmware, buffers, faults, seed.
    ///   - driver: opens the module's sockets (`.posix` for loopback peers, `.sim(net, host:)`).
    ///   - output: receives the module's bytes, in order, one call at a time.
    public init(_ configuration: ModemSimulatorConfiguration, driver: any Driver,
                output: @escaping @Sendable ([UInt8]) -> Void) {
        self.configuration = configuration
        self.driver = driver
        self.sink = output
        self.state = Mutex(SimState(configuration: configuration))
    }

    /// The clock every delay of the module runs on: the driver's.
    public var runtime: any Runtime { driver.runtime }

    // MARK: Host side

    /// Powers the module on: it boots and prints its banner after the boot delay. Input before
    /// the banner is ignored, as on hardware.
    public func powerOn() {
        update { $0.powerOn() }
    }

    /// Bytes from the host (its UART TX).
    public func input(_ bytes: [UInt8]) {
        update { $0.input(bytes) }
    }

    /// Bytes from the host (its UART TX).
    public func input(_ bytes: some Collection<UInt8>) {
        input(Array(bytes))
    }

    /// Silent mode: the module swallows input and says nothing (for host timeout tests).
    public func setSilent(_ silent: Bool) {
        update { s in
            s.silent = silent
            s.faultSilenced = false
        }
    }

    /// The network drops the packet context (a cellular module losing its bearer). SIM800
    /// prints `+PDP: DEACT`, loses every link and stays in `PDP DEACT` until `AT+CIPSHUT`;
    /// BG96 prints `+QIURC: "pdpdeact",1`, then `+QIURC: "closed",<id>` for each socket, whose
    /// buffered data stays readable until `AT+QICLOSE`. ESP-AT: no effect. Nothing happens
    /// unless the bearer is up. See `docs/modem-behaviour.md`, SIM-14 and BG-10.
    public func dropBearer() {
        update { $0.bearerLost() }
    }

    /// Runs `handler` (once, outside the simulator's lock) when the `portVanishesAfterBytes`
    /// fault fires: whoever owns the line closes it there. ``ModemLinkBridge`` sets this to close
    /// its link; replacing it replaces the bridge's handler.
    public func onPortVanished(_ handler: @escaping @Sendable () -> Void) {
        vanishHandler.withLock { $0 = handler }
    }

    /// Pulls the reset pin: every link dropped, output lost, boot banner after the boot delay.
    public func reset() {
        update { s in
            if !s.poweredOn {
                s.powerOn()
            } else {
                s.reset()
            }
        }
    }

    /// Powers the module off: links closed abortively, no more output.
    public func powerOff() {
        update { s in
            s.reset()
            s.poweredOn = false
            s.silent = true
            s.bootEpoch += 1
        }
    }

    /// What the module counted so far.
    public var statistics: ModemSimulatorStatistics { state.withLock { $0.stats } }

    /// Bytes the module holds for `link` (passive receive; on a UDP link the queued datagrams),
    /// for backpressure checks.
    public func bufferedBytes(link: Int) -> Int {
        state.withLock { s in link >= 0 && link < s.links.count ? s.links[link].held : 0 }
    }

    /// Whether `link` is in use (connecting, open, or closed by the peer but not yet released).
    public func isLinkInUse(_ link: Int) -> Bool {
        state.withLock { s in link >= 0 && link < s.links.count && s.links[link].inUse }
    }

    /// Output queued but not yet delivered to the host.
    public var pendingOutput: Int { state.withLock { $0.outputBacklog } }

    // MARK: Machinery

    /// Runs `body` under the lock, then does what it decided (spawns, messages, timers, output).
    func update(_ body: (inout SimState) -> Void) {
        let effects = state.withLock { s -> Effects in
            body(&s)
            return s.takeEffects()
        }
        perform(effects)
        flushOutput()
    }

    private func perform(_ effects: Effects) {
        if effects.isEmpty { return }
        if effects.portVanished, let handler = vanishHandler.withLock({ h -> (@Sendable () -> Void)? in
            defer { h = nil }
            return h
        }) {
            handler()
        }
        for (process, command) in effects.messages { process.send(command) }
        for request in effects.connects { spawnLink(request) }
        for request in effects.resolves { spawnResolve(request) }
        for timer in effects.timers {
            switch timer {
            case .bootBanner(let epoch, let delay):
                _ = runtime.schedule(afterNanoseconds: delay) { [self] in update { $0.bootFinished(epoch: epoch) } }
            case .restart(let epoch, let delay):
                _ = runtime.schedule(afterNanoseconds: delay) { [self] in update { $0.restartDue(epoch: epoch) } }
            }
        }
    }

    /// Moves output to the host: at once when no fault delays it, else one timed fragment at a
    /// time. Only one fragment is ever in transit, so output stays in order.
    private func flushOutput() {
        while true {
            let step = state.withLock { $0.nextOutputStep(now: runtime.now) }
            switch step {
            case .idle:
                return
            case .deliverNow(let bytes, let epoch):
                if !bytes.isEmpty { sink(bytes) }
                delivered(bytes.count, epoch: epoch)
            case .schedule(let bytes, let epoch, let delay):
                _ = runtime.schedule(afterNanoseconds: delay) { [self] in
                    let current = state.withLock { $0.outputEpoch == epoch }
                    if current, !bytes.isEmpty { sink(bytes) }
                    delivered(bytes.count, epoch: epoch)
                    flushOutput()
                }
                return
            }
        }
    }

    private func delivered(_ count: Int, epoch: UInt64) {
        let effects = state.withLock { s -> Effects in
            s.outputDelivered(count: count, epoch: epoch)
            return s.takeEffects()
        }
        perform(effects)
    }

    /// The addresses the simulated module may open real sockets to. On the simulated network
    /// (driver `sim`) every address stays inside the process; on any other driver only loopback
    /// addresses are allowed, so a simulated modem never reaches beyond this machine.
    static func reachable(_ addresses: [IPAddress], driver: any Driver) -> [IPAddress] {
        driver.name == "sim" ? addresses : addresses.filter(\.isLoopback)
    }

    private func spawnResolve(_ request: ResolveRequest) {
        let driver = self.driver
        Process.spawn(runtime: driver.runtime) { [self] in
            let addresses: [IPAddress]?
            do {
                let found = try await driver.resolve(request.name, preference: request.preference)
                let allowed = ModemSimulator.reachable(found, driver: driver)
                addresses = allowed.isEmpty ? nil : allowed
            } catch {
                addresses = nil
            }
            update { $0.resolved(epoch: request.epoch, name: request.name, addresses: addresses) }
        }
    }

    private func spawnLink(_ request: ConnectRequest) {
        let driver = self.driver
        Process.spawn(runtime: driver.runtime) { [self] in
            if let udp = request.udp {
                await runUDPLink(request, udp)
            } else {
                await runLink(request, driver: driver)
            }
        }
    }

    /// One link: connect, then serve the core's commands and the socket's messages until the
    /// link is closed. The socket closes with the process.
    private func runLink(_ request: ConnectRequest, driver: any Driver) async {
        let link = request.link
        let generation = request.generation
        let socket: Socket
        do {
            // Real sockets reach loopback only: a name is resolved here and filtered first.
            var host = Host(request.host)
            if case .name(let name) = host {
                let found = ModemSimulator.reachable(
                    try await driver.resolve(name, preference: .ipv4Preferred), driver: driver)
                guard let first = found.first else { throw SocketError(.hostUnreachable, "the simulator reaches loopback only") }
                host = .address(first)
            }
            if case .address(let address) = host, ModemSimulator.reachable([address], driver: driver).isEmpty {
                throw SocketError(.hostUnreachable, "the simulator reaches loopback only")
            }
            if let tls = request.tls {
                // ESP-T5, BG-T7: verification asked for with nothing in the slot or file named
                // fails like a refused certificate (unverified).
                if tls.missingTrust { throw SocketError(.tlsAlert, "no CA in the module's store") }
                socket = try await Socket.connect(
                    host, port: request.port, options: [.binary, .active(.passive)],
                    tls: ModemSimulator.clientContext(tls),
                    timeout: .milliseconds(request.timeoutMilliseconds), driver: driver)
            } else {
                socket = try await Socket.connect(
                    host, port: request.port, options: [.binary, .active(.passive)],
                    timeout: .milliseconds(request.timeoutMilliseconds), driver: driver)
            }
        } catch let error as SocketError {
            update { $0.linkConnectFailed(link: link, generation: generation, reason: error.reason) }
            return
        } catch {
            update { $0.linkConnectFailed(link: link, generation: generation, reason: .ioError) }
            return
        }
        let me = Process.current
        let local = try? socket.sockname()
        let remote = try? socket.peername()
        var accepted = false
        update { accepted = $0.linkConnected(link: link, generation: generation, process: me, local: local, remote: remote) }
        guard accepted else {
            socket.close()
            return
        }
        var readOpen = true
        while true {
            // Nil never comes without a timeout; an error means the process was killed or cancelled.
            guard let message = try? await Process.receive() else { return }
            switch message {
            case .tcp(_, let payload), .ssl(_, let payload):
                let bytes = payload.bytes
                update { $0.linkData(link: link, generation: generation, bytes: bytes) }
            case .tcpClosed, .tcpError, .sslClosed, .sslError:
                // A module reports only "closed": a TLS stream cut without close_notify looks
                // like a clean end to the host (ESP-T6, BG-T5, SIM-T3).
                if readOpen {
                    readOpen = false
                    update { $0.linkEnded(link: link, generation: generation) }
                }
            case .tcpPassive, .udp, .udpPassive, .udpError, .sslPassive:
                break
            case .user(let value):
                guard let command = value as? LinkCommand else { continue }
                switch command {
                case .arm(let room):
                    if readOpen { try? socket.setopts([.buffer(max(room, 1)), .active(.once)]) }
                case .send(let bytes):
                    var ok = true
                    do { try await socket.send(bytes) } catch { ok = false }
                    update { $0.sendFinished(link: link, generation: generation, ok: ok) }
                case .datagram:
                    update { $0.sendFinished(link: link, generation: generation, ok: false) }
                case .close(let abortive):
                    if abortive { try? socket.setopts(.linger(0)) }
                    socket.close()
                    return
                }
            }
        }
    }
}
