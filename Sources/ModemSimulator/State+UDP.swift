import GenTCP
import GenTCPCore
import GenTCPModem

/// UDP links, every dialect: opening, arriving datagrams (queue or push), reads of whole
/// datagrams. docs/modem-behaviour.md, ESP-U*n*, SIM-U*n*, BG-U*n*.
extension SimState {
    /// Opens a UDP link: the link's process binds a loopback UDP socket on `localPort` (0: any)
    /// and resolves `host` (nil: no remote).
    mutating func startUDP(link: Int, kind: LinkState.Kind, host: String?, port: Int, localPort: Int) {
        startConnect(link: link, host: host ?? "", port: host == nil ? 0 : port)
        links[link].kind = kind
        links[link].requestedLocalPort = localPort
        effects.connects[effects.connects.count - 1].udp = UDPOpen(localPort: localPort, hasRemote: host != nil)
    }

    /// Whether another UDP link of this module has (or asked for) local port `port`.
    func localPortTaken(_ port: Int, except link: Int) -> Bool {
        guard port != 0 else { return false }
        return links.indices.contains { i in
            i != link && links[i].inUse && links[i].isUDP
                && (links[i].requestedLocalPort == port || links[i].local?.port == port)
        }
    }

    /// The largest datagram the dialect hands to the host; longer ones are dropped whole.
    /// ESP-AT 1460 (ESP-U8, stock firmware without reassembly); SIM800 1460 (the read limit,
    /// SIM-U8, unverified); BG96 1500 (the `AT+QIRD` limit, BG-U7, unverified).
    var largestReceivedDatagram: Int { dialect == .bg96 ? 1500 : 1460 }

    /// A datagram reached a UDP link's socket.
    mutating func datagramArrived(link: Int, generation: UInt64, source: SocketAddress, bytes: [UInt8],
                                  truncated: Bool) {
        guard links[link].generation == generation, links[link].phase == .open, links[link].isUDP else { return }
        stats.datagramsReceived += 1
        if links[link].filtersOthers, let remote = links[link].remote, remote != source {
            stats.datagramsFiltered += 1
            return
        }
        if truncated || bytes.count > largestReceivedDatagram {
            stats.datagramsDropped += 1
            return
        }
        if isESP {
            // ESP-U2: the stored remote follows the senders in modes 1 and 2; nothing is filtered.
            switch links[link].remoteMode {
            case 1 where !links[link].remoteReplaced && links[link].remote != source:
                links[link].remote = source
                links[link].remoteReplaced = true
            case 2:
                links[link].remote = source
            default:
                break
            }
        }
        links[link].bytesReceived += bytes.count
        if isPassive(link), let limit = configuration.faults.passiveRevertsAfterBytes, !passiveRevertFired {
            passiveBytes += bytes.count
            if passiveBytes >= limit { revertToPush() }
        }
        if isPassive(link) {
            // ESP-AT passive: an empty datagram leaves nothing to read (ESP-8 answers ERROR with
            // nothing buffered), so it is dropped. Unverified.
            if isESP, bytes.isEmpty {
                stats.datagramsDropped += 1
                return
            }
            // ESP-U6: a full queue drops whole datagrams, silently.
            guard links[link].datagrams.count < configuration.maxQueuedDatagrams,
                  links[link].datagramBytes + bytes.count <= configuration.linkBufferSize else {
                stats.datagramsDropped += 1
                return
            }
            links[link].datagrams.append(QueuedDatagram(source: source, bytes: bytes))
            links[link].datagramBytes += bytes.count
            if !links[link].notified {
                links[link].notified = true
                dataNotice(link)
            }
        } else {
            // Push mode has no buffer: what the UART cannot carry is lost (ESP-U6).
            guard outputBacklog < configuration.maxOutputBacklog else {
                stats.datagramsDropped += 1
                return
            }
            pushDatagram(link, source: source, bytes: bytes)
        }
    }

    /// One datagram in the dialect's push form, with its sender where the dialect shows it.
    mutating func pushDatagram(_ link: Int, source: SocketAddress, bytes: [UInt8]) {
        let n = lengthField(bytes.count)
        var header: String
        switch dialect {
        case .espAT:
            // ESP-U4: one +IPD per datagram; the sender only with AT+CIPDINFO=1.
            header = multiplexed ? "\r\n+IPD,\(link),\(n)" : "\r\n+IPD,\(n)"
            if remoteInfo { header += ",\"\(source.address)\",\(source.port)" }
            header += ":"
        case .sim800:
            header = simPushHeader(link, length: n, from: source)
        case .bg96:
            // BG-U5: "UDP SERVICE" names the sender, "UDP" does not.
            header = links[link].kind == .udpService
                ? "\r\n+QIURC: \"recv\",\(link),\(n),\"\(source.address)\",\(source.port)\r\n"
                : "\r\n+QIURC: \"recv\",\(link),\(n)\r\n"
        }
        emit(Array(header.utf8) + bytes)
    }

    /// SIM800 pushed-data header (SIM-U5): `+RECEIVE,<n>,<len>:` (multi) or `+IPD,<len>:`
    /// (single, with `AT+CIPHEAD=1`); with `AT+CIPSRIP=1` the multi-link header becomes
    /// `+RECEIVE,<n>,<len>,<ip>:<port>` and single-link mode puts `+RECV FROM:<ip>:<port>` first.
    func simPushHeader(_ link: Int, length n: String, from source: SocketAddress?) -> String {
        let sender = simShowRemote ? source : nil
        if multiplexed {
            if let s = sender { return "\r\n+RECEIVE,\(link),\(n),\(s.address):\(s.port)\r\n" }
            return "\r\n+RECEIVE,\(link),\(n):\r\n"
        }
        var header = sender.map { "\r\n+RECV FROM:\($0.address):\($0.port)\r\n" } ?? ""
        if ipHead { header += header.isEmpty ? "\r\n+IPD,\(n):" : "+IPD,\(n):" }
        return header
    }

    /// Takes the next datagram of a UDP link, at most `maximum` bytes of it: the rest is lost.
    mutating func takeDatagram(_ link: Int, _ maximum: Int) -> QueuedDatagram? {
        guard !links[link].datagrams.isEmpty else { return nil }
        var d = links[link].datagrams.removeFirst()
        links[link].datagramBytes -= d.bytes.count
        if d.bytes.count > maximum {
            d.bytes = Array(d.bytes.prefix(maximum))
            stats.datagramsTruncated += 1
        }
        links[link].bytesRead += d.bytes.count
        return d
    }

    /// What a passive notice or `AT+CIPRECVLEN?` reports: everything held, or with
    /// `AT+CIPRECVTYPE=<id>,<mode>,1` on a UDP link the next datagram (ESP-U5).
    func espReportedLength(_ link: Int) -> Int {
        let l = links[link]
        if l.isUDP, espReportNext[link] { return l.datagrams.first?.bytes.count ?? 0 }
        return l.held
    }

    /// `passiveRevertsAfterBytes` on a UDP link: the queued datagrams go out in the push form.
    mutating func flushDatagrams(_ link: Int) {
        let queued = links[link].datagrams
        links[link].datagrams = []
        links[link].datagramBytes = 0
        for d in queued {
            links[link].bytesRead += d.bytes.count
            pushDatagram(link, source: d.source, bytes: d.bytes)
        }
    }
}
