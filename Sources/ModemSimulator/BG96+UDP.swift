import GenTCPCore

/// Quectel BG96 UDP sockets (TCP/IP Application Note §2.2.4, §2.2.7, §2.2.8, §2.3.2;
/// docs/modem-behaviour.md BG-U1 to BG-U6).
extension SimState {
    /// `AT+QIOPEN=<ctx>,<id>,"UDP","<host>",<rport>[,<lport>[,<access>]]` (connected) or
    /// `AT+QIOPEN=<ctx>,<id>,"UDP SERVICE","<address>",<rport>,<lport>[,<access>]` (anyone;
    /// the address and remote port are ignored). `OK`, then `+QIOPEN: <id>,<err>` (BG-U1).
    mutating func bgOpenUDP(_ c: ATCommandLine, service: Bool) {
        guard (5...7).contains(c.arguments.count), let ctx = c.int(0), (1...16).contains(ctx),
              let id = linkIndex(c.int(1)), let host = c.quoted(3), let remotePort = c.int(4) else { return error() }
        guard service || (!host.isEmpty && (1...65535).contains(remotePort)) else { return error() }
        guard !service || c.arguments.count >= 6 else { return error() }
        let localPort = c.arguments.count >= 6 ? c.int(5) : 0
        let access = c.arguments.count >= 7 ? c.int(6) : 0
        guard let localPort, (0...65535).contains(localPort), let access, access == 0 || access == 1 else {
            return error()  // transparent access (2) is not simulated
        }
        ok()
        if links[id].inUse {
            emit("\r\n+QIOPEN: \(id),563\r\n")  // socket identity has been used
            return
        }
        if localPortTaken(localPort, except: id) {
            emit("\r\n+QIOPEN: \(id),556\r\n")  // socket bind failed (unverified, BG-U1)
            return
        }
        startUDP(link: id, kind: service ? .udpService : .udp, host: service ? nil : host, port: remotePort,
                 localPort: localPort)
        links[id].accessMode = access
        // "UDP" is connected: other senders are dropped (unverified, BG-U1).
        links[id].filtersOthers = !service
    }

    /// Where an `AT+QISEND` on a UDP socket goes: `"UDP SERVICE"` needs `,"<ip>",<port>` (a
    /// dotted address, BG-U3); `"UDP"` takes none and sends to its remote (BG-U2).
    func bgDestination(_ c: ATCommandLine, _ id: Int) -> (host: String, port: Int)? {
        if links[id].kind == .udpService {
            guard c.arguments.count == 4, let text = c.quoted(2), let address = IPAddress(text),
                  let port = c.int(3), (1...65535).contains(port) else { return nil }
            return ("\(address)", port)
        }
        guard c.arguments.count == 2, let r = links[id].remote else { return nil }
        return ("\(r.address)", r.port)
    }

    /// `AT+QIRD` on a UDP socket in buffer access mode (BG-U4): one datagram per answer.
    /// `"UDP SERVICE"` takes no length and names the sender: `+QIRD: <n>,"<ip>",<port>`;
    /// `"UDP"` takes an optional length (at most 1500) and answers `+QIRD: <n>`; a shorter
    /// length loses the rest of the datagram (unverified). Empty: `+QIRD: 0`.
    mutating func bgReadUDP(_ c: ATCommandLine, _ id: Int) {
        var maximum = 1500
        if links[id].kind == .udpService {
            guard c.arguments.count == 1 else { return error() }
        } else if c.arguments.count >= 2 {
            guard c.arguments.count == 2, let m = c.int(1), (1...1500).contains(m) else { return error() }
            maximum = m
        }
        guard let d = takeDatagram(id, maximum) else {
            emit("\r\n+QIRD: 0\r\n\r\nOK\r\n")
            afterDrain(id)
            return
        }
        let n = lengthField(d.bytes.count)
        let header = links[id].kind == .udpService
            ? "\r\n+QIRD: \(n),\"\(d.source.address)\",\(d.source.port)\r\n" : "\r\n+QIRD: \(n)\r\n"
        emit(Array(header.utf8) + d.bytes + Array("\r\n\r\nOK\r\n".utf8))
        afterDrain(id)
    }
}
