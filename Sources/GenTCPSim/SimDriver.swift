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
    public let network: SimNetwork
    public let host: SimHost

    public init(network: SimNetwork, host: SimHost) {
        network.check(host)
        self.network = network
        self.host = host
    }

    public var name: String { "sim" }
    public var runtime: any Runtime { network.runtime }

    /// Host names of the network (and `localhost`, and address literals), ordered by `preference`.
    public func resolve(_ host: String, preference: IPVersionPreference) async throws(SocketError) -> [IPAddress] {
        try network.resolve(host, from: self.host, preference: preference)
    }

    public func connect(
        to address: SocketAddress, options: SocketOptions, timeoutNanoseconds: UInt64?,
        delegate: any ConnectionDelegate
    ) async throws(SocketError) -> any Connection {
        let network = self.network
        let index = host.index
        let result: Result<SimConnection, SocketError> = await withUnsafeContinuation { continuation in
            let refused = network.withWorld(deferred: false) { w in
                w.startConnect(from: index, to: address, options: options, timeoutNanoseconds: timeoutNanoseconds,
                               delegate: delegate, continuation: continuation)
            }
            if let refused { continuation.resume(returning: .failure(refused)) }
        }
        return try result.get()
    }

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
    /// The simulated network's driver for `host`: `driver: .sim(net, host: client)`.
    public static func sim(_ network: SimNetwork, host: SimHost) -> SimDriver {
        SimDriver(network: network, host: host)
    }
}
