import GenTCPCore

/// SIMCom SIM800 TCP/IP commands (SIM800 Series AT Command Manual §8, TCPIP application note).
extension SimState {
    mutating func simExecute(_ c: ATCommandLine) {
        if basicExecute(c) || cellularExecute(c) || simTLSExecute(c) { return }
        switch (c.name, c.kind) {
        case ("I", .execute):
            emit("\r\nSIM800 R14.18\r\n\r\nOK\r\n")
        case ("+GMR", .execute):
            emit("\r\nRevision:\(configuration.firmware)\r\n\r\nOK\r\n")
        case ("+CMEE", .set), ("+IFC", .set), ("+CREG", .set), ("+CGATT", .set), ("+CIPSPRT", .set),
             ("+CDNSCFG", .set), ("+CIPCCFG", .set), ("&W", .execute):
            ok()
        case ("+IPR", .set):
            guard let rate = c.int(0), rate >= 0 else { return error() }
            ok()
            if baudRate != nil, rate > 0 { baudRate = rate }
        case ("+CSTT", .set), ("+CSTT", .execute):
            // SIM-2: only in IP INITIAL, which it leaves for IP START. The execution form takes
            // the module's default APN (SIM800 AT manual §8.2.9).
            guard c.kind == .execute || c.quoted(0) != nil, simBearer == .initial, simSingleClosed == nil,
                  !links.contains(where: { $0.inUse }),
                  configuration.faults.noNetwork != .simNotReady else { return error() }
            simBearer = .start
            ok()
        case ("+CIICR", .execute):
            // SIM-3: only in IP START; IP CONFIG, then IP GPRSACT. A refused context leaves
            // PDP DEACT (the host must AT+CIPSHUT).
            guard simBearer == .start else { return error() }
            if configuration.faults.noNetwork != nil || configuration.faults.rejectCIICR {
                simBearer = .pdpDeact
                return error()
            }
            simBearer = .gprsAct
            ok()
        case ("+CIFSR", .execute):
            // SIM-4: only with the context active; the bare address, no OK. IP GPRSACT -> IP STATUS.
            guard simBearer == .gprsAct || simBearer == .status else { return error() }
            simBearer = .status
            emit("\r\n\(configuration.localAddress)\r\n")
        case ("+CIPSHUT", .execute):
            // SIM-7.
            for i in links.indices { dropLink(i, abortive: false) }
            simBearer = .initial
            simSingleClosed = nil
            emit("\r\nSHUT OK\r\n")
        case ("+CIPSTATUS", .execute):
            simStatus()
        case ("+CIPMUX", .set):
            // SIM-6: only in IP INITIAL.
            guard let m = c.int(0), m == 0 || m == 1 else { return error() }
            guard simBearer == .initial, simSingleClosed == nil, !links.contains(where: { $0.inUse }) else {
                return error()
            }
            multiplexed = m == 1
            ok()
        case ("+CIPMUX", .query):
            emit("\r\n+CIPMUX: \(multiplexed ? 1 : 0)\r\n\r\nOK\r\n")
        case ("+CIPSRIP", .set):
            guard let m = c.int(0), m == 0 || m == 1, c.arguments.count == 1 else { return error() }
            simShowRemote = m == 1
            ok()
        case ("+CIPSRIP", .query):
            emit("\r\n+CIPSRIP: \(simShowRemote ? 1 : 0)\r\n\r\nOK\r\n")
        case ("+CLPORT", .set):
            simLocalPortSet(c)
        case ("+CLPORT", .query):
            let text = multiplexed
                ? links.indices.map { "+CLPORT: \($0),0,\(simLocalPort[$0])" }.joined(separator: "\r\n")
                : "+CLPORT: 0,\(simLocalPort[0])"
            emit("\r\n\(text)\r\n\r\nOK\r\n")
        case ("+CIPUDPMODE", .set):
            simUDPModeSet(c)
        case ("+CIPUDPMODE", .query):
            simUDPModeQuery()
        case ("+CIPHEAD", .set):
            guard let m = c.int(0), m == 0 || m == 1 else { return error() }
            ipHead = m == 1
            ok()
        case ("+CIPQSEND", .set):
            guard let m = c.int(0), m == 0 || m == 1 else { return error() }
            quickSend = m == 1
            ok()
        case ("+CIPRXGET", .query):
            emit("\r\n+CIPRXGET: \(manualReceive ? 1 : 0)\r\n\r\nOK\r\n")
        case ("+CIPRXGET", .set):
            simReceiveGet(c)
        case ("+CIPSTART", .set):
            simConnect(c)
        case ("+CIPSEND", .set):
            simSend(c)
        case ("+CIPSEND", .query):
            let text = multiplexed ? links.indices.map { "+CIPSEND: \($0),1460" }.joined(separator: "\r\n") : "+CIPSEND: 1460"
            emit("\r\n\(text)\r\n\r\nOK\r\n")
        case ("+CIPCLOSE", .execute), ("+CIPCLOSE", .set):
            var link = 0
            if multiplexed {
                guard let id = linkIndex(c.int(0)) else { return error() }
                link = id
            }
            // SIM-13: only a link that is connecting or connected.
            guard links[link].phase == .open || links[link].phase == .connecting else { return error() }
            dropLink(link, abortive: false)
            if !multiplexed { simSingleClosed = "IP CLOSE" }
            emit("\r\n\(simPrefix(link))CLOSE OK\r\n")
        case ("+CDNSGIP", .set):
            guard let name = c.quoted(0), !name.isEmpty else { return error() }
            ok()
            effects.resolves.append(ResolveRequest(epoch: bootEpoch, name: name, preference: .ipv4Preferred))
        default:
            error()
        }
    }

    mutating func simConnect(_ c: ATCommandLine) {
        var args = c.arguments
        var link = 0
        if multiplexed {
            guard let id = linkIndex(c.int(0)) else { return error() }
            link = id
            args.removeFirst()
        }
        guard args.count == 3, args[0].string == "TCP" || args[0].string == "UDP", case .quoted(let host) = args[1],
              let port = args[2].int, !host.isEmpty, (1...65535).contains(port) else { return error() }
        let udp = args[0].string == "UDP"

        if links[link].inUse {
            emit("\r\n\(simPrefix(link))ALREADY CONNECT\r\n")
            return
        }
        // SIM-5: multi-link only with the bearer up (IP STATUS / IP PROCESSING); single-link
        // in IP INITIAL (the module brings the bearer up itself) or IP STATUS.
        if multiplexed {
            guard simBearer == .status else { return error() }
        } else {
            guard simSingleClosed == nil, simBearer == .initial || simBearer == .status else { return error() }
            if simBearer == .initial {
                if configuration.faults.noNetwork != nil || configuration.faults.rejectCIICR {
                    ok()
                    emit("\r\nSTATE: IP INITIAL\r\n\r\nCONNECT FAIL\r\n")
                    return
                }
                simBearer = .status
            }
        }
        // SIM-U2: a local port another link holds: ERROR (unverified).
        if udp, localPortTaken(simLocalPort[link], except: link) { return error() }
        ok()
        if udp {
            // SIM-U1: connected; normal mode drops other senders (unverified), SIM-U4 mode 1 not.
            startUDP(link: link, kind: .udp, host: host, port: port, localPort: simLocalPort[link])
            links[link].filtersOthers = simUDPMode[link] == 0
        } else {
            // SIM-T2: under AT+CIPSSL=1 the link runs TLS.
            startConnect(link: link, host: host, port: port, tls: simTLSSettings)
        }
    }

    mutating func simSend(_ c: ATCommandLine) {
        var link = 0
        var count: Int?
        if multiplexed {
            guard c.arguments.count == 2, let id = linkIndex(c.int(0)) else { return error() }
            link = id
            count = c.int(1)
        } else {
            guard c.arguments.count == 1 else { return error() }
            count = c.int(0)
        }
        // SIM-16: only on an established connection.
        guard let count, (1...1460).contains(count), links[link].phase == .open else { return error() }
        if links[link].isUDP {
            // SIM-U3: to the link's remote (or the SIM-U4 mode-2 destination).
            guard let r = links[link].remote else { return error() }
            sendDestination = ("\(r.address)", r.port)
        }
        emit("\r\n> ")
        mode = .payload(link: link, count: count)
    }

    /// `AT+CIPRXGET=<mode>[,<id>][,<len>]`.
    mutating func simReceiveGet(_ c: ATCommandLine) {
        guard let m = c.int(0) else { return error() }
        switch m {
        case 0, 1:
            guard c.arguments.count == 1 else { return error() }
            manualReceive = m == 1
            ok()
        case 2:
            guard manualReceive else { return error() }
            var link = 0
            var length: Int?
            if multiplexed {
                guard c.arguments.count == 3, let id = linkIndex(c.int(1)) else { return error() }
                link = id
                length = c.int(2)
            } else {
                guard c.arguments.count == 2 else { return error() }
                length = c.int(1)
            }
            guard let length, (1...1460).contains(length), links[link].readable else { return error() }
            let data: [UInt8]
            var sender: SocketAddress?
            if links[link].isUDP {
                // At most one datagram per read; a shorter read loses its rest (unverified, SIM-U6).
                let d = takeDatagram(link, length)
                data = d?.bytes ?? []
                sender = d?.source
            } else {
                data = take(link, length)
                sender = links[link].remote
            }
            let left = links[link].held
            // TinyGSM: the first number is what was delivered, the second what is left.
            let n = lengthField(data.count)
            // SIM-U6: with AT+CIPSRIP=1 the sender follows.
            let from = simShowRemote ? sender.map { ",\($0.address):\($0.port)" } ?? "" : ""
            let header = multiplexed ? "\r\n+CIPRXGET: 2,\(link),\(n),\(left)\(from)\r\n"
                : "\r\n+CIPRXGET: 2,\(n),\(left)\(from)\r\n"
            emit(Array(header.utf8) + data + Array("\r\nOK\r\n".utf8))
            afterDrain(link)
        case 4:
            guard manualReceive else { return error() }
            var link = 0
            if multiplexed {
                guard c.arguments.count == 2, let id = linkIndex(c.int(1)) else { return error() }
                link = id
            }
            guard links[link].readable else { return error() }
            let count = links[link].held
            emit(multiplexed ? "\r\n+CIPRXGET: 4,\(link),\(count)\r\n\r\nOK\r\n" : "\r\n+CIPRXGET: 4,\(count)\r\n\r\nOK\r\n")
        default:
            error()  // mode 3 (hex) is not simulated
        }
    }

    /// `AT+CIPSTATUS` (SIM-1): `OK`, `STATE: <state>`, and in multi-link mode one `C:` line per
    /// link.
    mutating func simStatus() {
        let bearer: String
        switch simBearer {
        case .initial: bearer = "IP INITIAL"
        case .start: bearer = "IP START"
        case .gprsAct: bearer = "IP GPRSACT"
        case .status: bearer = "IP STATUS"
        case .pdpDeact: bearer = "PDP DEACT"
        }
        var text = "\r\nOK\r\n\r\nSTATE: "
        if multiplexed {
            let busy = simBearer == .status && links.contains(where: { $0.inUse })
            text += (busy ? "IP PROCESSING" : bearer) + "\r\n"
            for i in links.indices {
                let l = links[i]
                let state: String
                switch l.phase {
                case .free: state = "INITIAL"
                case .connecting: state = "CONNECTING"
                case .open: state = "CONNECTED"
                case .peerClosed, .closing: state = "REMOTE CLOSING"
                }
                let address = l.remote.map { "\($0.address)" } ?? ""
                let port = l.remote.map { "\($0.port)" } ?? ""
                let kind = l.phase == .free ? "" : l.isUDP ? "UDP" : "TCP"
                text += "\r\nC: \(i),0,\"\(kind)\",\"\(address)\",\"\(port)\",\"\(state)\"\r\n"
            }
        } else {
            switch links[0].phase {
            case .connecting: text += links[0].isUDP ? "UDP CONNECTING" : "TCP CONNECTING"
            case .open: text += "CONNECT OK"
            case .peerClosed, .closing: text += links[0].isUDP ? "UDP CLOSED" : "TCP CLOSED"
            case .free: text += simSingleClosed ?? bearer
            }
            text += "\r\n"
        }
        emit(text)
    }
}
