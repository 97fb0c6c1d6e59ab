import GenTCP
import GenTCPCore
import Testing

/// The gen_udp conformance suite: every case runs on every backend of ``Backend/all`` (the same
/// backends as the gen_tcp suite). C is the socket under test on the backend's client driver; P
/// is its peer on the server driver, bound to the server's address. A backend whose driver does
/// not carry datagrams yet has its cases cancelled, with the reason.
enum UDPConformance {}

extension TestContext {
    /// The client and server drivers as datagram drivers.
    func udpDrivers() throws -> (client: any DatagramDriver, server: any DatagramDriver) {
        guard let c = clientDriver as? any DatagramDriver else {
            try Test.cancel("the \(backend) driver does not carry gen_udp yet")
        }
        guard let s = serverDriver as? any DatagramDriver else {
            try Test.cancel("the \(backend) peer driver does not carry gen_udp yet")
        }
        return (c, s)
    }

    /// C: a UDP socket on the client driver (wildcard address, ephemeral port unless given).
    func openClient(_ options: [Option] = [.binary, .active(.passive)], port: Int = 0) async throws -> UDPSocket {
        try await UDPSocket.open(port: port, options: options, driver: try udpDrivers().client)
    }

    /// P: a UDP socket on the server driver, bound to the server's address.
    func openPeer(_ options: [Option] = [.binary, .active(.passive)], port: Int = 0) async throws -> UDPSocket {
        try await UDPSocket.open(port: port, options: [.localAddress(serverAddress)] + options,
                                 driver: try udpDrivers().server)
    }

    /// Where C reaches P.
    func address(of peer: UDPSocket) throws -> SocketAddress {
        SocketAddress(serverAddress, port: try peer.port())
    }

    /// C and P, C connected to nothing, both binary and passive unless given.
    func udpPair(
        client: [Option] = [.binary, .active(.passive)], peer: [Option] = [.binary, .active(.passive)]
    ) async throws -> (c: UDPSocket, p: UDPSocket) {
        let p = try await openPeer(peer)
        let c = try await openClient(client)
        return (c, p)
    }

    /// A server port on which nobody listens for datagrams (bound, then closed).
    func unusedUDPPort() async throws -> Int {
        let s = try await openPeer()
        let port = try s.port()
        s.close()
        return port
    }

    /// The next `.udp` message, or what came instead.
    func nextDatagram(_ timeout: Timeout = 5000) async -> Msg {
        await next(timeout)
    }
}

/// The payload of a `.udp` message for `socket`, or nil when the message is something else.
func datagram(_ m: Msg, of socket: UDPSocket) -> Datagram? {
    if case .udp(let s, let d) = m, s == socket { return d }
    return nil
}

/// A numbered datagram: 4 bytes of sequence number, then `size - 4` pattern bytes.
func numbered(_ n: Int, size: Int = 16) -> [UInt8] {
    var b = [UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
    for i in 4..<max(4, size) { b.append(UInt8((n &+ i) & 0xFF)) }
    return b
}

/// The sequence number of a ``numbered(_:size:)`` datagram, checking its pattern; nil if altered.
func sequenceNumber(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    let n = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
    for i in 4..<bytes.count where bytes[i] != UInt8((n &+ i) & 0xFF) { return nil }
    return n
}

/// Sends to a connected socket's closed peer until `recv` reports the ICMP port unreachable
/// (`econnrefused`); true when it did within `attempts` datagrams. Linux rate-limits ICMP errors
/// (globally: `icmp_msgs_per_sec`), so on a busy test run one datagram may draw no answer; on
/// loopback the answer is generated while the datagram is sent, so a retry never races a late one.
func refusedByRecv(_ c: UDPSocket, attempts: Int = 20) async -> Bool {
    for _ in 0..<attempts {
        do throws(SocketError) {
            try await c.send(bytes("anyone?"))
            _ = try await c.recv(timeout: 1000)
        } catch {
            if error.reason == .connectionRefused { return true }
        }
    }
    return false
}

/// As ``refusedByRecv(_:attempts:)`` for a socket in an active mode: true when a `.udpError`
/// with `econnrefused` came.
func refusedByMessage(_ c: UDPSocket, attempts: Int = 20) async -> Bool {
    for _ in 0..<attempts {
        do throws(SocketError) { try await c.send(bytes("anyone?")) } catch {}
        if await next(1000) == .udpError(c, .connectionRefused) { return true }
    }
    return false
}
