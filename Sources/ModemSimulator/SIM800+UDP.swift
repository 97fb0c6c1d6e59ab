import GenTCPCore

/// SIM800 UDP settings (Manual §8.2.8 `AT+CLPORT`, §8.2.25 `AT+CIPUDPMODE`; SIM-U2, SIM-U4).
extension SimState {
    /// `AT+CLPORT=[<n>,]"TCP"|"UDP",<port>`: the local port of the link's next UDP open (kept
    /// until changed or a reset). A TCP port is accepted and not used.
    mutating func simLocalPortSet(_ c: ATCommandLine) {
        var link = 0
        var base = 0
        if multiplexed {
            guard let id = linkIndex(c.int(0)) else { return error() }
            link = id
            base = 1
        }
        guard c.arguments.count == base + 2, let kind = c.string(base), kind == "TCP" || kind == "UDP",
              let port = c.int(base + 1), (0...65535).contains(port) else { return error() }
        if kind == "UDP" { simLocalPort[link] = port }
        ok()
    }

    /// `AT+CIPUDPMODE=[<n>,]<mode>[,"<ip>",<port>]`: 0 normal (other senders dropped,
    /// unverified), 1 extended (anyone), 2 sets where the next sends go (an open UDP link in
    /// mode 1 only; a dotted address).
    mutating func simUDPModeSet(_ c: ATCommandLine) {
        var link = 0
        var base = 0
        if multiplexed {
            guard let id = linkIndex(c.int(0)) else { return error() }
            link = id
            base = 1
        }
        guard let mode = c.int(base) else { return error() }
        switch mode {
        case 0, 1:
            guard c.arguments.count == base + 1 else { return error() }
            simUDPMode[link] = mode
            if links[link].isUDP { links[link].filtersOthers = mode == 0 }
            ok()
        case 2:
            guard c.arguments.count == base + 3, let text = c.string(base + 1), let address = IPAddress(text),
                  let port = c.int(base + 2), (1...65535).contains(port),
                  simUDPMode[link] == 1, links[link].isUDP, links[link].phase == .open else { return error() }
            links[link].remote = SocketAddress(address, port: port)
            ok()
        default:
            error()
        }
    }

    /// `AT+CIPUDPMODE?`: the mode per link, with the destination of an open extended link.
    mutating func simUDPModeQuery() {
        let ids = multiplexed ? Array(links.indices) : [0]
        var text = ""
        for i in ids {
            var line = multiplexed ? "+CIPUDPMODE: \(i),\(simUDPMode[i])" : "+CIPUDPMODE: \(simUDPMode[i])"
            if simUDPMode[i] == 1, links[i].isUDP, let r = links[i].remote { line += ",\"\(r.address)\",\(r.port)" }
            text += "\r\n\(line)"
        }
        emit(text + "\r\n\r\nOK\r\n")
    }
}
