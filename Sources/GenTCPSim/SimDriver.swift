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

/// One end of a simulated connection.
final class SimConnection: Connection {
    let network: SimNetwork
    let link: Int
    let side: Int

    init(network: SimNetwork, link: Int, side: Int) {
        self.network = network
        self.link = link
        self.side = side
    }

    private func with<R: Sendable>(_ otherwise: R, _ body: (SimWorld, Link) -> R) -> R {
        network.withWorld(deferred: true) { w in
            guard let l = w.links[link] else { return otherwise }
            return body(w, l)
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        with(.failed(.notConnected)) { w, l in w.read(l, side, into: buffer) }
    }

    func write(_ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        with(.failed(.notConnected)) { w, l in w.write(l, side, chunks) }
    }

    func armRead() {
        with(()) { w, l in w.armRead(l, side) }
    }

    func armWrite() {
        with(()) { w, l in w.armWrite(l, side) }
    }

    func shutdown(_ how: ShutdownHow) -> SocketError.Reason? {
        with(.notConnected) { w, l in w.shutdown(l, side, how) }
    }

    func close(abortive: Bool) {
        with(()) { w, l in w.close(l, side: side, abortive: abortive) }
    }

    func localAddress() -> SocketAddress? {
        with(nil) { _, l in l.addresses[side] }
    }

    func remoteAddress() -> SocketAddress? {
        with(nil) { _, l in l.addresses[1 - side] }
    }

    func apply(_ option: Option) -> SocketError.Reason? {
        // nodelay, keepalive, reuseaddr: nothing to model; linger comes as close(abortive:).
        nil
    }
}

/// A simulated listener.
final class SimListener: Listener {
    let network: SimNetwork
    let id: Int
    let address: SocketAddress

    init(network: SimNetwork, id: Int, address: SocketAddress) {
        self.network = network
        self.id = id
        self.address = address
    }

    func accept(delegate: any ConnectionDelegate) throws(SocketError) -> (any Connection)? {
        let network = self.network
        let taken = network.withWorld(deferred: true) { w in w.accept(listener: id, delegate: delegate) }
        guard let (link, side) = taken else { return nil }
        return SimConnection(network: network, link: link, side: side)
    }

    func armAccept() {
        network.withWorld(deferred: true) { w in w.armAccept(listener: id) }
    }

    func close() {
        network.withWorld(deferred: true) { w in w.closeListener(id) }
    }

    func localAddress() -> SocketAddress? { address }
}
