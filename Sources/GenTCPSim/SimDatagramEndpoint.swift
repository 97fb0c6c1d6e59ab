import GenTCP
import GenTCPCore

extension SimDriver: DatagramDriver {
    /// Binds a simulated UDP socket on ``host``.
    ///
    /// Port 0 takes the next free port of the host's ephemeral range (49152...65535, UDP ports
    /// being apart from TCP's). The address may be the wildcard, a loopback address, one of the
    /// host's addresses or the /24 broadcast address of one of them. The receive queue is a
    /// `DatagramQueue` of `options.queueLimit`; datagrams that do not fit are dropped whole and
    /// counted (`recvDropped`).
    ///
    /// Datagrams travel whole over the ``SimLink`` between the two hosts (its latency, and its
    /// rate for the payload bytes, shared with TCP on that line), perturbed by
    /// ``SimDatagramFaults``. A datagram to a port nobody has bound sends an ICMP port
    /// unreachable back: a socket connected to that destination reports `econnrefused` once (on
    /// its next receive or send; a send that reports it does not send its datagram) after one
    /// round trip; an unconnected socket never sees it. A
    /// datagram to an address no host has vanishes. Sending to 255.255.255.255 or the host's /24
    /// broadcast address needs `broadcast` (`eacces` otherwise) and reaches every socket bound to
    /// that port on the wildcard of every host of the subnet, the sender's included. A datagram
    /// larger than the path's ``SimLink/mtu`` allows is `emsgsize` at send.
    /// - Throws: `eaddrinuse` when the port is taken on an overlapping address (unless both
    ///   sockets set `reuseaddr`), `eaddrnotavail` for an address that is not the host's.
    public func openDatagram(
        on address: SocketAddress, options: DatagramOptions, delegate: any DatagramDelegate
    ) async throws(SocketError) -> any DatagramEndpoint {
        let index = host.index
        let id = try network.withWorld(deferred: true) { (w: SimWorld) throws(SocketError) -> Int in
            try w.openDatagram(host: index, on: address, options: options, delegate: delegate).id
        }
        return SimDatagramEndpoint(network: network, id: id, isIPv6: address.address.isIPv6)
    }
}

/// One simulated UDP socket, as the port layer sees it. Every call takes the network's lock;
/// readiness is always announced later, from a timer on the simulator's executor.
final class SimDatagramEndpoint: DatagramEndpoint {
    let network: SimNetwork
    let id: Int
    let isIPv6: Bool

    init(network: SimNetwork, id: Int, isIPv6: Bool) {
        self.network = network
        self.id = id
        self.isIPv6 = isIPv6
    }

    private func with<R: Sendable>(_ otherwise: R, _ body: (SimWorld, UDPEndpointRecord) -> R) -> R {
        network.withWorld(deferred: true) { w in
            guard let e = w.udpEndpoints[id] else { return otherwise }
            return body(w, e)
        }
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> DatagramReceiveResult {
        with(.failed(.closed)) { w, e in w.receiveDatagram(e, into: buffer) }
    }

    func send(_ chunks: [UnsafeRawBufferPointer], to destination: SocketAddress?) -> DatagramSendResult {
        with(.failed(.closed)) { w, e in w.sendDatagram(e, chunks, to: destination) }
    }

    /// The network takes every datagram at once: a send never blocks.
    func sendPermit() -> Int { 64 }

    func armReceive() {
        with(()) { w, e in w.armDatagramReceive(e) }
    }

    func armSend() {
        with(()) { w, e in w.armDatagramSend(e) }
    }

    func connect(to peer: SocketAddress?) async throws(SocketError) {
        let found = with(false) { _, e in
            e.peer = peer
            return true
        }
        if !found { throw SocketError.closed }
    }

    func apply(_ option: Option) -> SocketError.Reason? {
        with(nil) { w, e in w.applyDatagram(e, option) }
    }

    func close() {
        with(()) { w, e in w.closeDatagram(e) }
    }

    func localAddress() -> SocketAddress? {
        with(nil) { _, e in e.address }
    }

    var droppedDatagramCount: UInt64 {
        with(0) { _, e in e.queue.dropped }
    }

    /// 65507 on IPv4, 65527 on IPv6 (a path's ``SimLink/mtu`` is checked at send).
    var maximumDatagramSize: Int { isIPv6 ? 65527 : 65507 }
}
