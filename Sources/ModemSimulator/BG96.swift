import GenTCPCore

/// Quectel BG96 TCP/IP commands (BG96 TCP/IP AT Commands Manual, TCP/IP Application Note).
extension SimState {
    mutating func bgExecute(_ c: ATCommandLine) {
        if basicExecute(c) || cellularExecute(c) || bgTLSExecute(c) || bgFileExecute(c) { return }
        switch (c.name, c.kind) {
        case ("I", .execute):
            emit("\r\nQuectel\r\nBG96\r\nRevision: \(configuration.firmware)\r\n\r\nOK\r\n")
        case ("+GMR", .execute):
            emit("\r\n\(configuration.firmware)\r\n\r\nOK\r\n")
        case ("+CMEE", .set), ("+IFC", .set), ("+CREG", .set), ("+CGREG", .set), ("+QICFG", .set),
             ("+QIDNSCFG", .set), ("&W", .execute):
            ok()
        case ("+IPR", .set):
            guard let rate = c.int(0), rate >= 0 else { return error() }
            ok()
            if baudRate != nil, rate > 0 { baudRate = rate }
        case ("+QICSGP", .set):
            guard let ctx = c.int(0), (1...16).contains(ctx) else { return error() }
            ok()
        case ("+QIACT", .set):
            guard let ctx = c.int(0), (1...16).contains(ctx) else { return error() }
            // BG-1: no SIM, registration or attach, or a refused context: ERROR.
            if configuration.faults.noNetwork != nil || configuration.faults.rejectCIICR { return error() }
            bearerUp = true
            ok()
        case ("+QIACT", .query):
            emit(bearerUp ? "\r\n+QIACT: 1,1,1,\"\(configuration.localAddress)\"\r\n\r\nOK\r\n" : "\r\nOK\r\n")
        case ("+QIDEACT", .set):
            for i in links.indices { dropLink(i, abortive: false) }
            bearerUp = false
            ok()
        case ("+QIOPEN", .set):
            bgOpen(c)
        case ("+QISEND", .set):
            bgSend(c)
        case ("+QIRD", .set):
            bgRead(c)
        case ("+QICLOSE", .set):
            guard let id = linkIndex(c.int(0)), !links[id].secure else { return error() }
            dropLink(id, abortive: false)
            ok()
        case ("+QISTATE", .set):
            // AT+QISTATE=1,<id>.
            guard c.int(0) == 1, let id = linkIndex(c.int(1)) else { return error() }
            if let text = bgState(id) { emit("\r\n\(text)\r\n\r\nOK\r\n") } else { ok() }
        case ("+QISTATE", .query), ("+QISTATE", .execute):
            let lines = links.indices.compactMap { bgState($0) }
            emit(lines.map { "\r\n\($0)" }.joined() + (lines.isEmpty ? "" : "\r\n") + "\r\nOK\r\n")
        case ("+QIDNSGIP", .set):
            guard let ctx = c.int(0), (1...16).contains(ctx), let name = c.quoted(1), !name.isEmpty else { return error() }
            ok()
            effects.resolves.append(ResolveRequest(epoch: bootEpoch, name: name, preference: .ipv4Preferred))
        default:
            error()
        }
    }

    func bgState(_ id: Int) -> String? {
        let l = links[id]
        let state: Int
        switch l.phase {
        case .free: return nil
        case .connecting: state = 1
        case .open: state = 2
        case .peerClosed, .closing: state = 4
        }
        let r = l.remote
        let type: String
        var address = r.map { "\($0.address)" } ?? ""
        switch l.kind {
        case .tcp: type = "TCP"
        case .udp: type = "UDP"
        case .udpService:
            // BG-U1 (BG95 §2.3.6): the address field is the local IP; the state is 2 (unverified).
            type = "UDP SERVICE"
            address = configuration.localAddress
        }
        return "+QISTATE: \(id),\"\(type)\",\"\(address)\",\(l.kind == .udpService ? 0 : r?.port ?? 0),\(l.local?.port ?? 0),"
            + "\(state),1,\(id),\(l.accessMode),\"uart1\""
    }

    /// `AT+QIOPEN=<ctx>,<id>,"TCP",<host>,<port>[,<local port>[,<access mode>]]`.
    mutating func bgOpen(_ c: ATCommandLine) {
        if let type = c.quoted(2), type == "UDP" || type == "UDP SERVICE" { return bgOpenUDP(c, service: type == "UDP SERVICE") }
        guard c.arguments.count >= 5, let ctx = c.int(0), (1...16).contains(ctx), let id = linkIndex(c.int(1)),
              c.quoted(2) == "TCP", let host = c.quoted(3), !host.isEmpty,
              let port = c.int(4), (1...65535).contains(port) else { return error() }
        let access = c.int(6) ?? 0
        guard access == 0 || access == 1 else { return error() }  // transparent mode is not simulated
        ok()
        if links[id].inUse {
            emit("\r\n+QIOPEN: \(id),563\r\n")  // socket identity has been used
            return
        }
        startConnect(link: id, host: host, port: port)
        links[id].accessMode = access
    }

    mutating func bgSend(_ c: ATCommandLine) {
        guard let id = linkIndex(c.int(0)), !links[id].secure else { return error() }
        if c.arguments.count == 2, c.int(1) == 0 {
            // Sent, acknowledged, unacknowledged: what left the module counts as acknowledged.
            let sent = links[id].bytesSent
            emit("\r\n+QISEND: \(sent),\(sent),0\r\n\r\nOK\r\n")
            return
        }
        if links[id].isUDP {
            // BG-U2, BG-U3: "UDP" sends to its remote, "UDP SERVICE" only with a destination.
            guard let count = c.int(1), (1...1460).contains(count), links[id].phase == .open,
                  let destination = bgDestination(c, id) else { return error() }
            sendDestination = destination
            emit("\r\n> ")
            mode = .payload(link: id, count: count)
            return
        }
        guard c.arguments.count == 2, let count = c.int(1), (1...1460).contains(count),
              links[id].phase == .open else { return error() }
        emit("\r\n> ")
        mode = .payload(link: id, count: count)
    }

    mutating func bgRead(_ c: ATCommandLine) {
        guard let id = linkIndex(c.int(0)), links[id].readable, links[id].accessMode == 0, !links[id].secure else {
            return error()
        }
        if c.arguments.count == 2, c.int(1) == 0 {
            let l = links[id]
            emit("\r\n+QIRD: \(l.bytesReceived),\(l.bytesRead),\(l.held)\r\n\r\nOK\r\n")
            return
        }
        if links[id].isUDP { return bgReadUDP(c, id) }
        let maximum = c.arguments.count >= 2 ? c.int(1) : 1500
        guard let maximum, (1...1500).contains(maximum) else { return error() }
        let data = take(id, maximum)
        if data.isEmpty {
            emit("\r\n+QIRD: 0\r\n\r\nOK\r\n")
        } else {
            emit(Array("\r\n+QIRD: \(lengthField(data.count))\r\n".utf8) + data + Array("\r\n\r\nOK\r\n".utf8))
        }
        afterDrain(id)
    }
}
