import GenTCP
import GenTCPCore

/// UDP links: one process per link owning a ``UDPSocket`` on the simulator's driver.
extension ModemSimulator {
    /// An IPv4 address for `host` that a UDP link may reach: loopback only on a real driver
    /// (the same rule as TCP links), anything on the simulated network.
    func udpAddress(_ host: String) async throws(SocketError) -> IPAddress {
        let candidates: [IPAddress]
        switch Host(host) {
        case .address(let a): candidates = [a]
        case .name(let n): candidates = try await driver.resolve(n, preference: .ipv4Only)
        }
        let allowed = ModemSimulator.reachable(candidates, driver: driver).filter { !$0.isIPv6 }
        guard let first = allowed.first else {
            throw SocketError(.hostUnreachable, "the simulator's UDP links reach IPv4 loopback only")
        }
        return first
    }

    /// One UDP link: bind (on a real driver to 127.0.0.1 only), resolve the remote if there is
    /// one, then hand every arriving datagram to the core and send what it asks, until closed.
    /// The socket is in active mode; the core drops what it has no room for.
    func runUDPLink(_ request: ConnectRequest, _ open: UDPOpen) async {
        let link = request.link
        let generation = request.generation
        let socket: UDPSocket
        var remote: SocketAddress?
        do throws(SocketError) {
            guard let datagrams = driver as? any DatagramDriver else {
                throw SocketError(.notSupported, "the simulator's driver carries no datagrams")
            }
            if open.hasRemote { remote = SocketAddress(try await udpAddress(request.host), port: request.port) }
            // A buffer above every dialect's limit, so an oversized datagram is seen whole and dropped.
            var options: [Option] = [.binary, .active(.active), .buffer(9216)]
            if driver.name != "sim" { options.append(.localAddress(.loopbackV4)) }
            socket = try await UDPSocket.open(port: open.localPort, options: options, driver: datagrams)
        } catch {
            let reason = error.reason
            update { $0.linkConnectFailed(link: link, generation: generation, reason: reason) }
            return
        }
        let me = Process.current
        let local = try? socket.sockname()
        var accepted = false
        update { accepted = $0.linkConnected(link: link, generation: generation, process: me, local: local, remote: remote) }
        guard accepted else {
            socket.close()
            return
        }
        while true {
            guard let message = try? await Process.receive() else {
                socket.close()
                return
            }
            switch message {
            case .udp(_, let datagram):
                let bytes = datagram.payload.bytes
                update {
                    $0.datagramArrived(link: link, generation: generation, source: datagram.source, bytes: bytes,
                                       truncated: datagram.truncated)
                }
            case .user(let value):
                guard let command = value as? LinkCommand else { continue }
                switch command {
                case .datagram(let bytes, let host, let port):
                    var ok = true
                    do {
                        let address = try await udpAddress(host)
                        try await socket.send(bytes, to: SocketAddress(address, port: port))
                    } catch {
                        ok = false
                    }
                    update { $0.sendFinished(link: link, generation: generation, ok: ok) }
                case .send:
                    update { $0.sendFinished(link: link, generation: generation, ok: false) }
                case .arm:
                    break
                case .close:
                    socket.close()
                    return
                }
            default:
                break
            }
        }
    }
}
