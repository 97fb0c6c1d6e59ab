import GenTCPCore

/// SIMCom SIM800 TCP/IP commands (SIM800 Series AT Command Manual §8, TCPIP application note).
extension SimState {
    mutating func simExecute(_ c: ATCommandLine) {
        if basicExecute(c) || cellularExecute(c) { return }
        switch (c.name, c.kind) {
        case ("I", .execute):
            emit("\r\nSIM800 R14.18\r\n\r\nOK\r\n")
        case ("+GMR", .execute):
            emit("\r\nRevision:\(configuration.firmware)\r\n\r\nOK\r\n")
        case ("+CMEE", .set), ("+IFC", .set), ("+CREG", .set), ("+CGATT", .set), ("+CIPSPRT", .set),
             ("+CIPSRIP", .set), ("+CDNSCFG", .set), ("+CIPCCFG", .set), ("&W", .execute):
            ok()
        case ("+IPR", .set):
            guard let rate = c.int(0), rate >= 0 else { return error() }
            ok()
            if baudRate != nil, rate > 0 { baudRate = rate }
        case ("+CSTT", .set):
            guard c.quoted(0) != nil else { return error() }
            ok()
        case ("+CSTT", .execute):
            ok()  // the module's default APN (SIM800 AT manual §8.2.9)
        case ("+CIICR", .execute):
            bearerUp = true
            ok()
        case ("+CIFSR", .execute):
            emit("\r\n\(configuration.localAddress)\r\n")  // bare address, no OK [doc]
        case ("+CIPSHUT", .execute):
            for i in links.indices { dropLink(i, abortive: false) }
            bearerUp = false
            emit("\r\nSHUT OK\r\n")
        case ("+CIPSTATUS", .execute):
            let state: String
            if links.contains(where: { $0.phase == .open }) {
                state = multiplexed ? "IP PROCESSING" : "CONNECT OK"
            } else if links.contains(where: { $0.phase == .connecting }) {
                state = "TCP CONNECTING"
            } else {
                state = bearerUp ? "IP STATUS" : "IP INITIAL"
            }
            emit("\r\nOK\r\n\r\nSTATE: \(state)\r\n")
        case ("+CIPMUX", .set):
            guard let m = c.int(0), m == 0 || m == 1 else { return error() }
            if links.contains(where: { $0.inUse }) { return error() }  // only in IP INITIAL
            multiplexed = m == 1
            ok()
        case ("+CIPMUX", .query):
            emit("\r\n+CIPMUX: \(multiplexed ? 1 : 0)\r\n\r\nOK\r\n")
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
            guard links[link].inUse else { return error() }
            dropLink(link, abortive: false)
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
        guard args.count == 3, args[0].string == "TCP", case .quoted(let host) = args[1],
              let port = args[2].int, !host.isEmpty, (1...65535).contains(port) else { return error() }
        if links[link].inUse {
            emit("\r\n\(simPrefix(link))ALREADY CONNECT\r\n")
            return
        }
        ok()
        startConnect(link: link, host: host, port: port)
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
        guard let count, (1...1460).contains(count), links[link].phase == .open || links[link].phase == .peerClosed else {
            return error()
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
            let data = take(link, length)
            let left = links[link].buffer.count
            // TinyGSM: the first number is what was delivered, the second what is left.
            let header = multiplexed ? "\r\n+CIPRXGET: 2,\(link),\(data.count),\(left)\r\n"
                : "\r\n+CIPRXGET: 2,\(data.count),\(left)\r\n"
            emit(Array(header.utf8) + data + Array("\r\nOK\r\n".utf8))
            afterRead(link)
        case 4:
            guard manualReceive else { return error() }
            var link = 0
            if multiplexed {
                guard c.arguments.count == 2, let id = linkIndex(c.int(1)) else { return error() }
                link = id
            }
            guard links[link].readable else { return error() }
            let count = links[link].buffer.count
            emit(multiplexed ? "\r\n+CIPRXGET: 4,\(link),\(count)\r\n\r\nOK\r\n" : "\r\n+CIPRXGET: 4,\(count)\r\n\r\nOK\r\n")
        default:
            error()  // mode 3 (hex) is not simulated
        }
    }
}
