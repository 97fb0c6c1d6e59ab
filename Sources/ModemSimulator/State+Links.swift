import GenTCP
import GenTCPCore
import GenTCPModem

/// The module's links: connects, data and notices, pushes, closes.
extension SimState {
    mutating func linkIndex(_ id: Int?) -> Int? {
        guard let id, id >= 0, id < links.count else { return nil }
        return id
    }

    mutating func isPassive(_ link: Int) -> Bool {
        if passiveReverted { return false }
        switch dialect {
        case .espAT: return espPassive[link]
        case .sim800: return manualReceive
        case .bg96: return links[link].accessMode == 0
        }
    }

    mutating func startConnect(link: Int, host: String, port: Int, timeoutMilliseconds: Int? = nil,
                               tls: SimTLSSettings? = nil) {
        let generation = nextGeneration
        nextGeneration += 1
        links[link] = LinkState()
        links[link].phase = .connecting
        links[link].generation = generation
        let timeout = timeoutMilliseconds ?? Int(configuration.connectTimeout.nanosecondsClamped / 1_000_000)
        links[link].secure = tls != nil
        effects.connects.append(ConnectRequest(link: link, generation: generation, host: host, port: port,
                                               timeoutMilliseconds: timeout, tls: tls))
    }

    /// Forgets a link and closes its socket.
    mutating func dropLink(_ link: Int, abortive: Bool) {
        if let p = links[link].process { effects.messages.append((p, .close(abortive: abortive))) }
        links[link] = LinkState()
        if case .sending(let l) = busy, l == link { busy = nil }
        if case .connecting(let l) = busy, l == link { busy = nil }
    }

    /// Asks the link's process for more data when the module has room for it.
    mutating func maybeArm(_ link: Int) {
        let l = links[link]
        // UDP links read in active mode and drop what does not fit (ESP-U6).
        guard l.phase == .open, !l.armed, !l.isUDP, let process = l.process else { return }
        let room: Int
        if isPassive(link) {
            room = configuration.linkBufferSize - l.buffer.count
        } else {
            guard outputBacklog < configuration.maxOutputBacklog else { return }
            room = isESP ? 2920 : 1460
        }
        guard room > 0 else { return }
        links[link].armed = true
        effects.messages.append((process, .arm(room)))
    }

    mutating func linkConnected(link: Int, generation: UInt64, process: Process,
                                local: SocketAddress?, remote: SocketAddress?) -> Bool {
        guard links[link].generation == generation, links[link].phase == .connecting else { return false }
        links[link].phase = .open
        links[link].process = process
        links[link].local = local
        links[link].remote = remote
        stats.linksOpened += 1
        switch dialect {
        case .espAT: espConnected(link)
        case .sim800: emit("\r\n\(simPrefix(link))CONNECT OK\r\n")
        case .bg96: emit(links[link].secure ? "\r\n+QSSLOPEN: \(link),0\r\n" : "\r\n+QIOPEN: \(link),0\r\n")
        }
        if configuration.faults.silentAfterConnect, !silentAfterConnectFired {
            silentAfterConnectFired = true
            silent = true
            faultSilenced = true
        }
        maybeArm(link)
        return true
    }

    mutating func linkConnectFailed(link: Int, generation: UInt64, reason: SocketError.Reason) {
        guard links[link].generation == generation, links[link].phase == .connecting else { return }
        let wasUDP = links[link].isUDP
        let wasSecure = links[link].secure
        links[link] = LinkState()
        if wasSecure, dialect == .bg96 {
            // BG-T7: a failed handshake is -1 (unverified); a failed connect the 5xx codes.
            emit("\r\n+QSSLOPEN: \(link),\(SimState.handshakeFailed(reason) ? -1 : SimState.bgCode(reason))\r\n")
            return
        }
        switch dialect {
        case .espAT where wasUDP:
            // ESP-U1: a failed UDP open answers ERROR (no CLOSED: nothing was connected).
            emit("\r\nERROR\r\n")
            busy = nil
        case .espAT: espConnectFailed(link)
        case .sim800:
            if multiplexed {
                emit("\r\n\(link), CONNECT FAIL\r\n")
            } else {
                emit("\r\nSTATE: TCP CLOSED\r\n\r\nCONNECT FAIL\r\n")
            }
        case .bg96:
            let code: Int
            switch reason {
            case .addressInUse: code = 556  // socket bind failed (BG-U1: unverified)
            case .nonExistentDomain: code = 565
            case .timeout, .connectionTimedOut: code = 569
            default: code = 566
            }
            emit("\r\n+QIOPEN: \(link),\(code)\r\n")
        }
    }

    mutating func linkData(link: Int, generation: UInt64, bytes: [UInt8]) {
        guard links[link].generation == generation, links[link].phase == .open else { return }
        links[link].armed = false
        links[link].bytesReceived += bytes.count
        if isPassive(link), let limit = configuration.faults.passiveRevertsAfterBytes, !passiveRevertFired {
            passiveBytes += bytes.count
            if passiveBytes >= limit { revertToPush() }
        }
        if isPassive(link) {
            links[link].buffer.append(contentsOf: bytes)
            if !links[link].notified {
                links[link].notified = true
                dataNotice(link)
            }
        } else {
            push(link, bytes)
        }
        maybeArm(link)
    }

    /// The passive-mode "data waiting" URC.
    mutating func dataNotice(_ link: Int) {
        switch dialect {
        case .espAT:
            let n = lengthField(espReportedLength(link))
            emit(multiplexed ? "\r\n+IPD,\(link),\(n)\r\n" : "\r\n+IPD,\(n)\r\n")
        case .sim800:
            // SIM-U6: with AT+CIPSRIP=1 the notice names the sender (of the next datagram on UDP).
            var sender = ""
            if simShowRemote, let s = links[link].isUDP ? links[link].datagrams.first?.source : links[link].remote {
                sender = ",\(s.address):\(s.port)"
            }
            emit(multiplexed ? "\r\n+CIPRXGET: 1,\(link)\(sender)\r\n" : "\r\n+CIPRXGET: 1\(sender)\r\n")
        case .bg96: emit(links[link].secure ? "\r\n+QSSLURC: \"recv\",\(link)\r\n" : "\r\n+QIURC: \"recv\",\(link)\r\n")
        }
    }

    /// Push mode: the data goes out at once, with the dialect's header.
    mutating func push(_ link: Int, _ bytes: [UInt8]) {
        var offset = 0
        let chunk = isESP ? 2920 : 1460
        while offset < bytes.count {
            let piece = Array(bytes[offset..<min(offset + chunk, bytes.count)])
            offset += piece.count
            var header: String
            let n = lengthField(piece.count)
            switch dialect {
            case .espAT:
                header = multiplexed ? "\r\n+IPD,\(link),\(n)" : "\r\n+IPD,\(n)"
                if remoteInfo, let r = links[link].remote { header += ",\"\(r.address)\",\(r.port)" }
                header += ":"
            case .sim800:
                header = simPushHeader(link, length: n, from: links[link].remote)
            case .bg96:
                header = "\r\n+QIURC: \"recv\",\(link),\(n)\r\n"
            }
            emit(Array(header.utf8) + piece)
        }
    }

    mutating func linkEnded(link: Int, generation: UInt64) {
        guard links[link].generation == generation, links[link].phase == .open else { return }
        links[link].armed = false
        links[link].phase = .peerClosed
        // ESP-AT (ESP-11) holds CLOSED back while passive data waits; SIM800 (SIM-12) and BG96
        // (BG-6, BG-7) report the close at once and keep the data readable.
        if dialect != .espAT || links[link].buffer.isEmpty { closeNotice(link) }
    }

    /// The peer's close as the dialect reports it.
    mutating func closeNotice(_ link: Int) {
        switch dialect {
        case .espAT:
            emit(multiplexed ? "\(link),CLOSED\r\n" : "CLOSED\r\n")
            dropLink(link, abortive: false)
        case .sim800:
            emit(multiplexed ? "\r\n\(link), CLOSED\r\n" : "\r\nCLOSED\r\n")
            if !multiplexed { simSingleClosed = "TCP CLOSED" }
            // Readable with AT+CIPRXGET=2 until drained, then released (SIM-12).
            if links[link].buffer.isEmpty { dropLink(link, abortive: false) }
        case .bg96:
            emit(links[link].secure ? "\r\n+QSSLURC: \"closed\",\(link)\r\n" : "\r\n+QIURC: \"closed\",\(link)\r\n")
            links[link].phase = .closing
        }
    }

    /// `passiveRevertsAfterBytes`: the receive mode falls back to push; what the module holds
    /// goes out first, in the push form, so nothing is lost or reordered.
    mutating func revertToPush() {
        passiveRevertFired = true
        passiveReverted = true
        // The settings are gone, so the queries say so too.
        for i in espPassive.indices { espPassive[i] = false }
        manualReceive = false
        for i in links.indices where links[i].isUDP && links[i].hasData {
            flushDatagrams(i)
            afterDrain(i)
        }
        for i in links.indices where !links[i].buffer.isEmpty {
            let data = links[i].buffer
            links[i].buffer = []
            links[i].bytesRead += data.count
            push(i, data)
            afterDrain(i)
        }
    }

    /// The length field of a data header, padded by the `overlongHeaders` fault.
    mutating func lengthField(_ n: Int) -> String {
        guard let padding = configuration.faults.overlongHeaders, padding.count > 0 else { return "\(n)" }
        if let limit = padding.headers, paddedHeaders >= limit { return "\(n)" }
        paddedHeaders += 1
        return String(repeating: padding.fill == .zeros ? "0" : " ", count: padding.count) + "\(n)"
    }
}
