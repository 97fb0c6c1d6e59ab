import GenTCPCore

/// ESP-AT commands (docs/en/AT_Command_Set: Basic and TCP-IP AT commands).
extension SimState {
    var espHasReceiveType: Bool { espVersion >= FirmwareVersion("3.3") }
    var espPrefixFormat: Bool { multiplexed }

    func espPrefix(_ link: Int) -> String { multiplexed ? "\(link)," : "" }

    mutating func espExecute(_ c: ATCommandLine) {
        if basicExecute(c) || espTLSExecute(c) { return }
        switch (c.name, c.kind) {
        case ("+GMR", .execute):
            let v = configuration.firmware
            emit("AT version:\(v)(modem-sim - ESP32 - Jan  1 2024 00:00:00)\r\nSDK version:v4.2.2\r\n"
                + "compile time(modem-sim):Jan  1 2024 00:00:00\r\nBin version:\(v)(WROOM-32)\r\n\r\nOK\r\n")
        case ("+RST", .execute), ("+RESTORE", .execute):
            ok()
            restart()
        case ("+CIPMUX", .set):
            guard let m = c.int(0), m == 0 || m == 1, c.arguments.count == 1 else { return error() }
            // Only while no link is open [doc].
            if links.contains(where: { $0.inUse }) { return error() }
            multiplexed = m == 1
            ok()
        case ("+CIPMUX", .query):
            emit("+CIPMUX:\(multiplexed ? 1 : 0)\r\n\r\nOK\r\n")
        case ("+CIPMODE", .set):
            // Transparent mode is not simulated.
            guard c.int(0) == 0 else { return error() }
            ok()
        case ("+CIPMODE", .query):
            emit("+CIPMODE:0\r\n\r\nOK\r\n")
        case ("+CIPDINFO", .set):
            guard let m = c.int(0), m == 0 || m == 1 else { return error() }
            remoteInfo = m == 1
            ok()
        case ("+CWMODE", .set), ("+SYSLOG", .set), ("+SYSMSG", .set), ("+CIPDNS", .set), ("+CWQAP", .execute),
             ("+CIPRECONNINTV", .set), ("+SYSSTORE", .set):
            ok()
        case ("+CWMODE", .query):
            emit("+CWMODE:1\r\n\r\nOK\r\n")
        case ("+CWJAP", .set):
            emit("WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n")
        case ("+CIFSR", .execute):
            emit("+CIFSR:STAIP,\"\(configuration.localAddress)\"\r\n+CIFSR:STAMAC,\"24:0a:c4:00:00:01\"\r\n\r\nOK\r\n")
        case ("+CIPRECVMODE", .set) where !espHasReceiveType:
            guard let m = c.int(0), m == 0 || m == 1 else { return error() }
            for i in espPassive.indices { espPassive[i] = m == 1 }
            ok()
        case ("+CIPRECVMODE", .query) where !espHasReceiveType:
            emit("+CIPRECVMODE:\(espPassive[0] ? 1 : 0)\r\n\r\nOK\r\n")
        case ("+CIPRECVTYPE", .set) where espHasReceiveType:
            let id: Int
            let m: Int?
            // ESP-4: [<id>,]<mode>[,<data_len_report_mode>]; for TCP both report modes give the
            // total buffered; on UDP links 1 reports the next datagram (ESP-U5).
            let base = multiplexed ? 1 : 0
            guard c.arguments.count == base + 1 || c.arguments.count == base + 2 else { return error() }
            if multiplexed {
                guard let i = c.int(0), (0...5).contains(i) else { return error() }
                id = i
            } else {
                id = 0
            }
            m = c.int(base)
            var report = 0
            if c.arguments.count == base + 2 {
                guard let r = c.int(base + 1), r == 0 || r == 1 else { return error() }
                report = r
            }
            guard let m, m == 0 || m == 1 else { return error() }
            let ids = id == 5 ? Array(espPassive.indices) : [id]
            for i in ids {
                espPassive[i] = m == 1
                espReportNext[i] = report == 1
            }
            ok()
        case ("+CIPRECVTYPE", .query) where espHasReceiveType:
            var text = ""
            if multiplexed {
                for i in espPassive.indices { text += "+CIPRECVTYPE:\(i),\(espPassive[i] ? 1 : 0)\r\n" }
            } else {
                text = "+CIPRECVTYPE:\(espPassive[0] ? 1 : 0)\r\n"
            }
            emit(text + "\r\nOK\r\n")
        case ("+CIPSTART", .set):
            espConnect(c)
        case ("+CIPSEND", .set):
            espSend(c)
        case ("+CIPRECVDATA", .set):
            espRead(c)
        case ("+CIPRECVLEN", .query):
            let closed = espVersion < FirmwareVersion("3.0") ? "-1" : ""
            let ids = multiplexed ? Array(links.indices) : [0]
            let fields = ids.map { links[$0].readable ? "\(espReportedLength($0))" : closed }
            emit("+CIPRECVLEN:\(fields.joined(separator: ","))\r\n\r\nOK\r\n")
        case ("+CIPCLOSE", .execute):
            guard !multiplexed else { return error() }
            guard links[0].inUse else { return error() }
            dropLink(0, abortive: false)
            emit("CLOSED\r\n\r\nOK\r\n")
        case ("+CIPCLOSE", .set):
            guard multiplexed, c.arguments.count == 1, let id = c.int(0), (0...5).contains(id) else { return error() }
            if id == 5 {
                var text = ""
                for i in links.indices where links[i].inUse {
                    dropLink(i, abortive: false)
                    text += "\(i),CLOSED\r\n"
                }
                emit(text + "\r\nOK\r\n")
            } else {
                guard links[id].inUse else { return error() }
                dropLink(id, abortive: false)
                emit("\(id),CLOSED\r\n\r\nOK\r\n")
            }
        case ("+CIPDOMAIN", .set):
            guard let name = c.string(0), !name.isEmpty, name.utf8.count <= 64 else { return error() }
            let preference: IPVersionPreference
            switch c.int(1) ?? 1 {
            case 2: preference = .ipv4Only
            case 3: preference = .ipv6Only
            default: preference = .ipv4Preferred
            }
            busy = .resolving
            effects.resolves.append(ResolveRequest(epoch: bootEpoch, name: name, preference: preference))
        case ("+CIPSTATE", .query):
            var text = ""
            for i in links.indices where links[i].readable {
                let r = links[i].remote
                text += "+CIPSTATE:\(i),\"\(links[i].isUDP ? "UDP" : "TCP")\",\"\(r.map { "\($0.address)" } ?? "0.0.0.0")\",\(r?.port ?? 0),"
                    + "\(links[i].local?.port ?? 0),0\r\n"
            }
            emit(text + "\r\nOK\r\n")
        case ("+UART_CUR", .set), ("+UART_DEF", .set):
            guard let rate = c.int(0), rate >= 80, rate <= 5_000_000 else { return error() }
            ok()
            // OK goes out at the old rate; the pacing follows the new one.
            if baudRate != nil, c.name == "+UART_CUR" { baudRate = rate }
        default:
            error()
        }
    }

    mutating func espConnect(_ c: ATCommandLine) {
        var args = c.arguments
        var link = 0
        if multiplexed {
            guard let id = c.int(0), (0..<links.count).contains(id) else { return error() }
            link = id
            args.removeFirst()
        }
        guard args.count >= 3, case .quoted(let type) = args[0], case .quoted(let host) = args[1],
              let port = args[2].int else { return error() }
        if type == "UDP" { return espOpenUDP(link: link, args: args) }
        guard type == "TCP" || type == "TCPv6" || type == "SSL" || type == "SSLv6" else { return error() }
        // ESP-T4: an "SSL" link runs the settings of ESP-T1..T3 (none given: no verification).
        let secure = type.hasPrefix("SSL")
        if secure, !configuration.tlsStore.supported { return error() }
        guard !host.isEmpty, host.utf8.count <= 64, (1...65535).contains(port) else { return error() }
        if links[link].inUse {
            emit("ALREADY CONNECTED\r\n\r\nERROR\r\n")
            return
        }
        // [,<keep_alive>][,"<local IP>"][,<timeout_ms>]: the timeout is the last bare number
        // after the keep-alive.
        var timeout: Int?
        if args.count >= 6, let t = args[5].int, (0...60000).contains(t), t > 0 { timeout = t }
        busy = .connecting(link)
        startConnect(link: link, host: host, port: port, timeoutMilliseconds: timeout,
                     tls: secure ? (espTLS[link] ?? SimTLSSettings()) : nil)
    }

    mutating func espConnected(_ link: Int) {
        emit("\(espPrefix(link))CONNECT\r\n\r\nOK\r\n")
        busy = nil
    }

    mutating func espConnectFailed(_ link: Int) {
        // esp-at-nal #10: ERROR, then <id>,CLOSED.
        emit("\r\nERROR\r\n\(espPrefix(link))CLOSED\r\n")
        busy = nil
    }

    mutating func espSend(_ c: ATCommandLine) {
        let link: Int
        let count: Int?
        // [<id>,]<len>[,"<host>",<port>]: the destination is for UDP links only (ESP-U3).
        let base = multiplexed ? 2 : 1
        guard c.arguments.count == base || c.arguments.count == base + 2 else { return error() }
        if multiplexed {
            guard let id = c.int(0) else { return error() }
            guard (0..<links.count).contains(id), links[id].readable, links[id].phase != .closing else {
                emit("link is not valid\r\n\r\nERROR\r\n")
                return
            }
            link = id
            count = c.int(1)
        } else {
            guard links[0].readable else {
                emit("link is not valid\r\n\r\nERROR\r\n")
                return
            }
            link = 0
            count = c.int(0)
        }
        guard let count, (1...8192).contains(count) else { return error() }
        if links[link].isUDP {
            guard let destination = espDestination(c, link: link, base: base) else { return error() }
            sendDestination = destination
        } else if c.arguments.count != base {
            return error()  // a destination on a TCP link: unverified (ESP-U3)
        }
        emit("\r\nOK\r\n\r\n>")
        mode = .payload(link: link, count: count)
    }

    mutating func espRead(_ c: ATCommandLine) {
        let link: Int
        let maximum: Int?
        // [<id>,]<len>[,<keep_datagram_integrity>] (the flag matters for UDP only).
        let base = multiplexed ? 1 : 0
        guard c.arguments.count == base + 1 || c.arguments.count == base + 2 else { return error() }
        var keepDatagrams = false
        if c.arguments.count == base + 2 {
            guard let k = c.int(base + 1), k == 0 || k == 1 else { return error() }
            keepDatagrams = k == 1
        }
        if multiplexed {
            guard let id = linkIndex(c.int(0)) else { return error() }
            link = id
            maximum = c.int(1)
        } else {
            link = 0
            maximum = c.int(0)
        }
        // ESP-7, ESP-8: any length up to 0x7fffffff; ERROR in active mode or with nothing to read.
        guard let maximum, (1...0x7fff_ffff).contains(maximum), isPassive(link), links[link].readable,
              links[link].hasData else { return error() }
        if links[link].isUDP { return espReadUDP(link, maximum, keepDatagrams: keepDatagrams) }
        let data = take(link, maximum)
        espReadAnswer(link, data, from: links[link].remote)
    }

    /// `+CIPRECVDATA:<len>,["<ip>",<port>,]<data>` (ESP-7), then `OK`.
    mutating func espReadAnswer(_ link: Int, _ data: [UInt8], from source: SocketAddress?) {
        var header: String
        let n = lengthField(data.count)
        if espVersion < FirmwareVersion("2.0") {
            header = "+CIPRECVDATA,\(n):"
        } else {
            header = "+CIPRECVDATA:\(n),"
            if remoteInfo, let r = source { header += "\"\(r.address)\",\(r.port)," }
        }
        emit(Array(header.utf8) + data + Array("\r\nOK\r\n".utf8))
        afterDrain(link)
    }
}
