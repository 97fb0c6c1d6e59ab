import GenTCP
import GenTCPCore

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
