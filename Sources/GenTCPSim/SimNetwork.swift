import GenTCP
import GenTCPCore
import Synchronization

/// A simulated network: hosts, listeners, TCP connections and UDP sockets in memory, timed by a
/// virtual clock and perturbed by seeded faults.
///
/// ```swift
/// let net = SimNetwork(seed: 42)
/// let server = net.addHost("server")      // 10.0.0.1, fd00::1
/// let client = net.addHost("client")      // 10.0.0.2, fd00::2
/// net.setFaults(SimFaults(jitter: .milliseconds(2), stallProbability: 0.01))
/// let reply = try await net.run {
///     let l = try ListenSocket.listen(port: 7, options: [.active(.passive)], driver: .sim(net, host: server))
///     net.spawn {
///         let s = try await l.accept()
///         try await s.send(try await s.recv(0).bytes)
///     }
///     let c = try await Socket.connect("server", port: 7, options: [.active(.passive)], driver: .sim(net, host: client))
///     try await c.send("hello")
///     return try await c.recv(5)
/// }
/// print(net.trace)                        // the same for every run with seed 42
/// ```
///
/// **Everything that touches the simulated sockets must run inside the simulation**: in the body
/// of ``run(_:)``, in processes it spawns with `Process.spawn(runtime: net.runtime)` (or
/// ``spawn(_:)``), and waiting only with GenTCP timeouts, `Process.receive` or
/// ``sleep(for:)``. Then every step runs on the network's one serial executor in a fixed order,
/// the virtual clock jumps over idle time, and a run with the same seed gives the same ``trace``.
/// Code outside (another executor, `Task.sleep`, a second concurrent `run`) still works but breaks
/// that determinism.
///
/// What the network models, per connection and direction: one-way latency and an optional line
/// rate between each pair of hosts (``SimLink``), segments of ``Configuration/segmentSize``
/// bytes delivered in order on the virtual clock, and the receiver's window: a write takes no
/// more than the receiver's free window (bytes in flight, unread, or read less than one latency
/// ago count against it), so a peer that does not read stops its sender and memory stays bounded.
/// Ends behave as a Linux peer would: FIN after data, half-close, RST after buffered data, an RST
/// in answer to data sent to a closed socket, `econnrefused` one round trip after a SYN to a port
/// nobody listens on, SYN retransmissions (1 s, 2 s, 4 s...) when nothing answers or a backlog is
/// full, and a graceful close with unread received data sent as an RST.
public final class SimNetwork: Sendable {
    /// Settings of a network.
    public struct Configuration: Hashable, Sendable {
        /// The link between any two hosts (and a host and itself) not given one with
        /// ``SimNetwork/setLink(_:between:and:)``.
        public var link = SimLink()
        /// Default receive window of a host's connections, in bytes.
        public var receiveWindow = 64 * 1024
        /// The largest data segment, in bytes.
        public var segmentSize = 1460
        /// Faults for the whole network (see ``SimNetwork/setFaults(_:for:)`` for narrower scopes).
        public var faults = SimFaults.none
        /// Datagram faults for the whole network (see ``SimNetwork/setDatagramFaults(_:for:)``
        /// for narrower scopes).
        public var datagramFaults = SimDatagramFaults.none
        /// SYN retransmissions before a connect without a timeout fails with `etimedout`
        /// (Linux's `tcp_syn_retries`: 6, giving up after 127 s).
        public var synRetries = 6
        /// The first SYN retransmission timeout; it doubles each time.
        public var initialRetransmitTimeout: Duration = .seconds(1)
        /// The most trace events kept; later ones are counted in ``SimStatistics/traceDropped``.
        public var traceLimit = 100_000
        /// Wall-clock time a stuck simulation (every process waiting, no timer pending) is given
        /// before ``SimNetwork/run(_:)`` throws ``SimDeadlock``; nil waits forever.
        public var deadlockTimeout: Duration? = .seconds(1)

        /// Settings with every field as named; see each property for its meaning and default.
        public init(
            link: SimLink = SimLink(), receiveWindow: Int = 64 * 1024, segmentSize: Int = 1460,
            faults: SimFaults = .none, synRetries: Int = 6,
            initialRetransmitTimeout: Duration = .seconds(1), traceLimit: Int = 100_000,
            deadlockTimeout: Duration? = .seconds(1), datagramFaults: SimDatagramFaults = .none
        ) {
            self.datagramFaults = datagramFaults
            self.link = link
            self.receiveWindow = receiveWindow
            self.segmentSize = segmentSize
            self.faults = faults
            self.synRetries = synRetries
            self.initialRetransmitTimeout = initialRetransmitTimeout
            self.traceLimit = traceLimit
            self.deadlockTimeout = deadlockTimeout
        }
    }

    /// The seed of every random decision of this network.
    public let seed: UInt64
    /// The settings the network was made with (``setLink(_:between:and:)`` and
    /// ``setFaults(_:for:)`` change the network, not this value).
    public let configuration: Configuration
    /// The virtual clock and serial executor of this network.
    public let runtime: SimRuntime
    let world: Mutex<SimWorld>

    /// An empty network (add hosts with ``addHost(_:addresses:receiveWindow:)``).
    /// - Parameters:
    ///   - seed: seeds every random decision (faults, jitter); the same seed replays the same run.
    ///   - configuration: links, windows, faults and limits.
    /// - Throws: `badarg` when `receiveWindow` or `segmentSize` is not positive.
    public init(seed: UInt64 = 0, configuration: Configuration = Configuration()) throws(SocketError) {
        guard configuration.receiveWindow > 0 else {
            throw SocketError(.badArgument, "GenTCPSim: receiveWindow must be > 0")
        }
        guard configuration.segmentSize > 0 else {
            throw SocketError(.badArgument, "GenTCPSim: segmentSize must be > 0")
        }
        let runtime = SimRuntime(deadlockTimeout: configuration.deadlockTimeout, stoppedUntilFirstRun: true)
        self.seed = seed
        self.configuration = configuration
        self.runtime = runtime
        self.world = Mutex(SimWorld(runtime: runtime, configuration: configuration, seed: seed))
        world.withLock { $0.network = self }
    }

    /// Runs `body` under the lock; readiness callbacks it produced run after the lock is released.
    /// `deferred`: the caller is a Connection or Listener method, so readiness is announced later.
    func withWorld<R: Sendable>(deferred: Bool, _ body: (SimWorld) throws(SocketError) -> R) throws(SocketError) -> R {
        let (result, callbacks): (Result<R, SocketError>, [SimCallback]) = world.withLock { w in
            w.deferCallbacks = deferred
            let r: Result<R, SocketError>
            do throws(SocketError) { r = .success(try body(w)) } catch { r = .failure(error) }
            let c = w.callbacks
            w.callbacks = []
            w.deferCallbacks = false
            return (r, c)
        }
        for c in callbacks { c.run() }
        return try result.get()
    }

    func withWorld<R: Sendable>(deferred: Bool, _ body: (SimWorld) -> R) -> R {
        let (result, callbacks): (R, [SimCallback]) = world.withLock { w in
            w.deferCallbacks = deferred
            let r = body(w)
            let c = w.callbacks
            w.callbacks = []
            w.deferCallbacks = false
            return (r, c)
        }
        for c in callbacks { c.run() }
        return result
    }

    /// A timer of the network fired.
    func fire(_ event: SimTimer) {
        withWorld(deferred: false) { $0.handle(event) }
    }

    // MARK: Hosts and links

    /// Adds a host. Without `addresses` it gets `10.0.0.N` and `fd00::N` (N = its number, from 1).
    /// Names are unique (case-insensitively), and so are addresses.
    /// - Parameters:
    ///   - name: the host's name, resolvable from every host; not empty, not `localhost`.
    ///   - addresses: its addresses; none may be taken, loopback or the any address.
    ///   - receiveWindow: its sockets' receive window (> 0); the network's by default.
    /// - Throws: `badarg` for an empty, taken or reserved name, a taken or reserved address, or a
    ///   window that is not positive; the network is unchanged then.
    @discardableResult
    public func addHost(_ name: String, addresses: [IPAddress]? = nil, receiveWindow: Int? = nil) throws(SocketError) -> SimHost {
        let window = receiveWindow ?? configuration.receiveWindow
        guard window > 0 else { throw SocketError(.badArgument, "GenTCPSim: receiveWindow must be > 0") }
        let result: Result<SimHost, SocketError> = withWorld(deferred: false) { w in
            let index = w.hosts.count
            let key = name.lowercased()
            guard !name.isEmpty, w.hostByName[key] == nil, key != "localhost" else {
                return .failure(SocketError(.badArgument, "GenTCPSim: host name is empty, taken or localhost"))
            }
            let n = index + 1
            let chosen = addresses ?? [
                IPAddress(10, 0, UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)),
                .v6(0xFD00, 0, 0, 0, 0, 0, 0, UInt16(truncatingIfNeeded: n)),
            ]
            // Check every address before taking any: a refused host leaves no trace.
            for (i, a) in chosen.enumerated() {
                guard w.hostByAddress[a] == nil, !SimWorld.isLoopback(a), !SimWorld.isAny(a),
                      !chosen[..<i].contains(a) else {
                    return .failure(SocketError(.badArgument, "GenTCPSim: a host address is taken or reserved"))
                }
            }
            for a in chosen { w.hostByAddress[a] = index }
            w.hosts.append(HostRecord(name: name, addresses: chosen, receiveWindow: window))
            w.hostByName[key] = index
            return .success(SimHost(name: name, addresses: chosen, receiveWindow: window, index: index, network: ObjectIdentifier(self)))
        }
        return try result.get()
    }

    /// The host with this name (case-insensitive), if any.
    public func host(named name: String) -> SimHost? {
        withWorld(deferred: false) { w in
            guard let i = w.hostByName[name.lowercased()] else { return nil }
            let h = w.hosts[i]
            return SimHost(name: h.name, addresses: h.addresses, receiveWindow: h.receiveWindow, index: i, network: ObjectIdentifier(self))
        }
    }

    /// Every host, in the order added.
    public var hosts: [SimHost] {
        withWorld(deferred: false) { w in
            w.hosts.enumerated().map { i, h in
                SimHost(name: h.name, addresses: h.addresses, receiveWindow: h.receiveWindow, index: i, network: ObjectIdentifier(self))
            }
        }
    }

    /// Sets the link between two hosts (both directions), or a host's loopback when `a == b`.
    public func setLink(_ link: SimLink, between a: SimHost, and b: SimHost) {
        check(a)
        check(b)
        withWorld(deferred: false) { w in w.profiles[HostPair(a.index, b.index)] = link }
    }

    /// Sets the faults of a scope; ``SimFaults/none`` switches a scope's faults off (connections
    /// opened later use them; open connections keep theirs).
    public func setFaults(_ faults: SimFaults, for scope: SimFaultScope = .network) {
        withWorld(deferred: false) { w in
            switch scope {
            case .network: w.faults[.network] = faults
            case .host(let h):
                check(h)
                w.faults[.host(h.index)] = faults
            case .port(let h, let p):
                check(h)
                w.faults[.port(h.index, p)] = faults
            }
        }
    }

    /// A driver for connections from and listeners on `host`.
    /// - Throws: `badarg` when `host` belongs to another network.
    public func driver(for host: SimHost) throws(SocketError) -> SimDriver {
        try SimDriver(network: self, host: host)
    }

    /// Whether `host` was added to this network.
    func owns(_ host: SimHost) -> Bool { host.network == ObjectIdentifier(self) }

    func check(_ host: SimHost) {
        precondition(host.network == ObjectIdentifier(self), "GenTCPSim: host \(host) belongs to another network")
    }

    // MARK: Running

    /// Runs `body` as a process of the simulation and returns its value (rethrowing its error).
    ///
    /// The virtual clock moves only while a run is under way. The run begins with the process's
    /// first step on the simulator's thread (the clock starts there, where the last run left it)
    /// and ends, on that thread, the moment `body` returns: the clock stops then, before the
    /// process exits and closes its sockets. Those closes, and every other job or timer due at
    /// that instant, still run (taking no virtual time), and `run` returns only once the simulator
    /// has nothing left to do at that instant. So ``trace``, ``statistics`` and ``now`` read after
    /// `run` are the same on every run with the same seed, however busy the machine is.
    ///
    /// Between runs the clock stands still: work submitted from outside the simulation (closing a
    /// driver, a socket used from another executor) runs, but no timer later than ``now`` fires
    /// until the next `run`; ``SimRuntime/settle()`` waits for such work to finish. Tear down
    /// inside the body (close drivers there) to have the teardown counted in the run. A second
    /// `run` continues from where the first stopped. Runs may overlap; the clock stops when the
    /// last one ends.
    ///
    /// Waiting for the run suspends the calling task; no thread is blocked.
    ///
    /// - Throws: what `body` throws; ``SimDeadlock`` when the simulation gets stuck (every process
    ///   waiting, no timer pending) for ``Configuration/deadlockTimeout``.
    public func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let runtime = self.runtime
        let outcome = RunOutcome<T>()
        return try await withUnsafeThrowingContinuation { continuation in
            outcome.install(continuation)
            Task {
                // The run begins in its first job, on the simulator's thread, not when this task
                // starts: on a busy machine the task can wait for a pool thread longer than the
                // deadlock timeout, and nothing may move the clock before the run's first step.
                let result: Result<T, any Error>
                do {
                    result = .success(try await Process.run(runtime: runtime) {
                        let token = runtime.beginRun { now in outcome.finish(.failure(SimDeadlock(virtualTime: now))) }
                        defer { outcome.stoppedTheClock(runtime.endRun(token)) }
                        return try await body()
                    })
                } catch {
                    result = .failure(error)
                }
                // Everything due at the run's last instant (the process's sockets closing, the
                // messages that sends) happens before the caller reads the network. A run that
                // ends while another goes on does not wait (that one may be waiting for it).
                if outcome.lastRun { await runtime.settle() }
                outcome.finish(result)
            }
        }
    }
    /// Starts a process of the simulation.
    @discardableResult
    public func spawn(_ body: @escaping @Sendable () async throws -> Void) -> Process {
        Process.spawn(runtime: runtime, body)
    }

    /// Waits `duration` of virtual time (call it inside the simulation).
    public func sleep(for duration: Duration) async {
        await runtime.sleep(for: duration)
    }

    /// Virtual nanoseconds since the network was created.
    public var now: UInt64 { runtime.now }
    /// ``now`` as a `Duration` since the network was created.
    public var uptime: Duration { runtime.uptime }

    // MARK: Observing

    /// Everything that happened so far, in order, with virtual times.
    public var trace: [SimEvent] { withWorld(deferred: false) { $0.trace } }

    /// Counters, and the bytes the network holds now.
    public var statistics: SimStatistics {
        withWorld(deferred: false) { w in
            var s = w.stats
            s.bufferedBytes = w.bufferedBytes
            return s
        }
    }

    /// Connections the network still tracks (not yet closed on both sides, or with segments in
    /// flight).
    public var openConnections: Int { withWorld(deferred: false) { $0.links.count } }

    // MARK: For the driver

    func resolve(_ name: String, from h: SimHost, preference: IPVersionPreference) throws(SocketError) -> [IPAddress] {
        let found: [IPAddress]
        if let literal = IPAddress(name) {
            found = [literal]
        } else if name.lowercased() == "localhost" {
            found = [.loopbackV4, .loopbackV6]
        } else {
            found = withWorld(deferred: false) { w in
                w.hostByName[name.lowercased()].map { w.hosts[$0].addresses } ?? []
            }
        }
        return try preference.order(found)
    }
}

/// The one result of a ``SimNetwork/run(_:)``: the body's, or a deadlock, whichever comes first.
private final class RunOutcome<T: Sendable>: Sendable {
    private let state = Mutex<(UnsafeContinuation<T, any Error>?, done: Bool)>((nil, false))
    private let stopped = Atomic<Bool>(false)

    /// The run's end stopped the clock (no other run was under way).
    var lastRun: Bool { stopped.load(ordering: .acquiring) }

    func stoppedTheClock(_ value: Bool) { stopped.store(value, ordering: .releasing) }

    func install(_ continuation: UnsafeContinuation<T, any Error>) {
        state.withLock { $0.0 = continuation }
    }

    func finish(_ result: Result<T, any Error>) {
        let c: UnsafeContinuation<T, any Error>? = state.withLock { s in
            guard !s.done else { return nil }
            s.done = true
            return s.0
        }
        c?.resume(with: result)
    }
}
