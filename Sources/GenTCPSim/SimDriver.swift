import GenTCP
import GenTCPCore

/// The `sim` driver: sockets of one host of a ``SimNetwork``.
///
/// ```swift
/// let s = try await Socket.connect("server", port: 80, driver: .sim(net, host: client))
/// ```
///
/// Use it only inside the simulation (see ``SimNetwork``): its runtime is the network's virtual
/// clock, so every socket timeout counts virtual time.
public struct SimDriver: Driver {
    /// The network the sockets live on; its runtime is the driver's clock.
    public let network: SimNetwork
    /// The host the sockets belong to: connections leave from it, listeners bind on it.
    public let host: SimHost

    /// The driver of `host`.
    /// - Throws: `badarg` when `host` was not added to `network`.
    public init(network: SimNetwork, host: SimHost) throws(SocketError) {
        guard network.owns(host) else { throw SocketError(.badArgument, "GenTCPSim: the host belongs to another network") }
        self.network = network
        self.host = host
    }

    /// `sim`.
    public var name: String { "sim" }
    /// The network's virtual clock (a ``SimRuntime``).
    public var runtime: any Runtime { network.runtime }

    /// Host names of the network (and `localhost`, and address literals), ordered by `preference`.
    public func resolve(_ host: String, preference: IPVersionPreference) async throws(SocketError) -> [IPAddress] {
        try network.resolve(host, from: self.host, preference: preference)
    }

    /// Starts a simulated handshake from ``host`` to `address`: a SYN one latency away, answered
    /// by the listener there (or refused, or retransmitted while a backlog is full or nobody
    /// answers).
    /// - Throws: `econnrefused` when nobody listens (or a fault refuses), `timeout` when
    ///   `timeout` of virtual time passes, `etimedout` when the SYN retries run out.
    public func connect(
        to address: SocketAddress, options: SocketOptions, timeout: Duration?,
        delegate: any ConnectionDelegate
    ) async throws(SocketError) -> any Connection {
        let network = self.network
        let index = host.index
        let result: Result<SimConnection, SocketError> = await withUnsafeContinuation { continuation in
            let refused = network.withWorld(deferred: false) { w in
                w.startConnect(from: index, to: address, options: options, timeoutNanoseconds: timeout?.clampedNanoseconds,
                               delegate: delegate, continuation: continuation)
            }
            if let refused { continuation.resume(returning: .failure(refused)) }
        }
        return try result.get()
    }

    /// Opens a listener on ``host`` (port 0: an ephemeral port from the host's range).
    /// - Throws: `eaddrinuse` when the port is taken, `eaddrnotavail` for an address the host
    ///   does not have.
    public func listen(
        on address: SocketAddress, options: SocketOptions, delegate: any ListenerDelegate
    ) throws(SocketError) -> any Listener {
        let index = host.index
        let id = try network.withWorld(deferred: false) { (w: SimWorld) throws(SocketError) -> Int in
            try w.listen(host: index, on: address, options: options, delegate: delegate)
        }
        let bound = network.withWorld(deferred: false) { w in w.listeners[id]?.address }
        return SimListener(network: network, id: id, address: bound ?? address)
    }
}

extension Driver where Self == SimDriver {
    /// The simulated network's driver for `host`: `driver: .sim(net, host: client)` (inside a
    /// `try` expression).
    /// - Throws: `badarg` when `host` was not added to `network`.
    public static func sim(_ network: SimNetwork, host: SimHost) throws(SocketError) -> SimDriver {
        try SimDriver(network: network, host: host)
    }
}
