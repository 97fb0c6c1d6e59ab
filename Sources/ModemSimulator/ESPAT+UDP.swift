import GenTCPCore

/// ESP-AT UDP links (TCP-IP AT Commands, *Establish UDP Transmission*; docs/modem-behaviour.md
/// ESP-U1 to ESP-U8).
extension SimState {
    /// `AT+CIPSTART=[<id>,]"UDP","<host>",<remote port>[,<local port>[,<mode>[,"<local IP>"]]]`
    /// (ESP-U1). `args` starts at the type. A remote of `0.0.0.0` or port 0 (only with a local
    /// port, as hosts open "listening" links) leaves the link without a stored remote.
    mutating func espOpenUDP(link: Int, args: [ATCommandLine.Argument]) {
        guard (3...6).contains(args.count), case .quoted(let host) = args[1], let remotePort = args[2].int,
              !host.isEmpty, host.utf8.count <= 64 else { return error() }
        let localPort = args.count >= 4 ? args[3].int : 0
        let mode = args.count >= 5 ? args[4].int : 0
        guard let localPort, (0...65535).contains(localPort), let mode, (0...2).contains(mode) else { return error() }
        guard (1...65535).contains(remotePort) || (remotePort == 0 && localPort > 0) else { return error() }
        if links[link].inUse {
            emit("ALREADY CONNECTED\r\n\r\nERROR\r\n")
            return
        }
        // A local port another link holds: ERROR (unverified, ESP-U1).
        if localPortTaken(localPort, except: link) { return error() }
        let noRemote = remotePort == 0 || IPAddress(host)?.isUnspecified == true
        busy = .connecting(link)
        startUDP(link: link, kind: .udp, host: noRemote ? nil : host, port: remotePort, localPort: localPort)
        links[link].remoteMode = mode
    }

    /// Where an `AT+CIPSEND` on a UDP link goes: the given `"<host>",<port>` (which does not
    /// change the stored remote, in any mode: unverified), else the stored remote; nil (the
    /// command answers `ERROR`) when there is neither or the destination is malformed.
    func espDestination(_ c: ATCommandLine, link: Int, base: Int) -> (host: String, port: Int)? {
        if c.arguments.count == base + 2 {
            guard let host = c.quoted(base), !host.isEmpty, host.utf8.count <= 64,
                  let port = c.int(base + 1), (1...65535).contains(port) else { return nil }
            return (host, port)
        }
        guard let r = links[link].remote else { return nil }
        return ("\(r.address)", r.port)
    }

    /// `AT+CIPRECVDATA` on a passive UDP link (ESP-U5). Without `<keep_datagram_integrity>`
    /// the read merges datagrams up to `maximum`, shows the first one's sender, and a datagram
    /// cut by the limit loses its rest (esp-at #323, #451, #452). With it, the read returns
    /// exactly the next datagram, or `ERROR` (the datagram kept) when it is longer than
    /// `maximum` (both unverified).
    mutating func espReadUDP(_ link: Int, _ maximum: Int, keepDatagrams: Bool) {
        if keepDatagrams {
            guard let next = links[link].datagrams.first, next.bytes.count <= maximum,
                  let d = takeDatagram(link, maximum) else { return error() }
            return espReadAnswer(link, d.bytes, from: d.source)
        }
        var data: [UInt8] = []
        var source: SocketAddress?
        while data.count < maximum, let d = takeDatagram(link, maximum - data.count) {
            source = source ?? d.source
            data += d.bytes
        }
        espReadAnswer(link, data, from: source)
    }
}
