import GenTCP
import GenTCPCore
import GenTCPModem

/// Byte-count faults, the bearer, reads and sends, name lookups.
extension SimState {
    /// The next byte-count fault to fire: the smallest limit not yet reached.
    func nextTrigger() -> (limit: Int, kind: ByteTrigger)? {
        let faults = configuration.faults
        let all: [(Int?, ByteTrigger)] = [(faults.resetAfterBytes, .reset), (faults.silenceAfterBytes, .silence),
                                          (faults.portVanishesAfterBytes, .vanish)]
        var best: (limit: Int, kind: ByteTrigger)?
        for (limit, kind) in all {
            guard let limit, !firedTriggers.contains(kind) else { continue }
            if best == nil || limit < best!.limit { best = (limit, kind) }
        }
        return best
    }

    mutating func fire(_ kind: ByteTrigger) {
        guard !firedTriggers.contains(kind) else { return }
        firedTriggers.insert(kind)
        if pendingTrigger == kind { pendingTrigger = nil }
        switch kind {
        case .reset:
            reset()
        case .silence:
            silent = true
            faultSilenced = true
            discardOutput()
        case .vanish:
            for i in links.indices { dropLink(i, abortive: true) }
            discardOutput()
            poweredOn = false
            silent = true
            bootEpoch += 1
            effects.portVanished = true
        }
    }

    /// Output not yet on the wire is lost; a fragment in transit is not delivered.
    mutating func discardOutput() {
        outQueue.removeAll()
        outHead = 0
        outputEpoch += 1
        inTransit = false
        lastByteWasNewline = true
    }

    /// The network dropped the packet context (`ModemSimulator.dropBearer()`).
    mutating func bearerLost() {
        switch dialect {
        case .espAT:
            return
        case .sim800:
            // SIM-14: every link dead, PDP DEACT until AT+CIPSHUT.
            guard simBearer == .gprsAct || simBearer == .status else { return }
            emit("\r\n+PDP: DEACT\r\n")
            for i in links.indices { dropLink(i, abortive: true) }
            simBearer = .pdpDeact
            simSingleClosed = nil
        case .bg96:
            // BG-10: pdpdeact, then each socket reports closed and waits for AT+QICLOSE.
            guard bearerUp else { return }
            bearerUp = false
            emit("\r\n+QIURC: \"pdpdeact\",1\r\n")
            for i in links.indices {
                switch links[i].phase {
                case .connecting:
                    dropLink(i, abortive: true)
                    emit("\r\n+QIOPEN: \(i),566\r\n")
                case .open, .peerClosed:
                    if let p = links[i].process { effects.messages.append((p, .close(abortive: true))) }
                    links[i].process = nil
                    links[i].armed = false
                    emit("\r\n+QIURC: \"closed\",\(i)\r\n")
                    links[i].phase = .closing
                case .free, .closing:
                    break
                }
            }
        }
    }

    /// Takes up to `maximum` buffered bytes of a passive link.
    mutating func take(_ link: Int, _ maximum: Int) -> [UInt8] {
        let n = min(maximum, links[link].buffer.count)
        let data = Array(links[link].buffer.prefix(n))
        links[link].buffer.removeFirst(n)
        links[link].bytesRead += n
        return data
    }

    /// After a host read: the next notice, the held-back close, more reading.
    mutating func afterDrain(_ link: Int) {
        if !links[link].hasData {
            links[link].notified = false
            if links[link].phase == .peerClosed {
                switch dialect {
                case .espAT: closeNotice(link)  // ESP-11: CLOSED once the data is read
                case .sim800: dropLink(link, abortive: false)  // SIM-12: CLOSED came already
                case .bg96: break
                }
            }
        } else if isESP {
            dataNotice(link)  // esp-at #994: a new +IPD with the remaining total
        }
        if links[link].inUse { maybeArm(link) }
    }

    mutating func payloadComplete(link: Int, data: [UInt8]) {
        switch dialect {
        case .espAT:
            emit("\r\nRecv \(data.count) bytes\r\n")
        case .sim800, .bg96:
            break
        }
        guard links[link].phase == .open || links[link].phase == .peerClosed, let process = links[link].process else {
            sendFinished(link: link, generation: links[link].generation, ok: false)
            return
        }
        links[link].bytesSent += data.count
        if links[link].isUDP {
            // One AT+CIPSEND / AT+QISEND is one datagram (ESP-U3, SIM-U3, BG-U2).
            guard let destination = sendDestination else {
                sendFinished(link: link, generation: links[link].generation, ok: false)
                return
            }
            sendDestination = nil
            stats.datagramsSent += 1
            effects.messages.append((process, .datagram(data, host: destination.host, port: destination.port)))
        } else {
            effects.messages.append((process, .send(data)))
        }
        if dialect == .sim800, quickSend {
            emit("\r\nDATA ACCEPT:\(link),\(data.count)\r\n")
            return
        }
        busy = .sending(link)
    }

    mutating func sendFinished(link: Int, generation: UInt64, ok: Bool) {
        guard links[link].generation == generation else { return }
        if dialect == .sim800, quickSend { return }
        switch dialect {
        case .espAT: emit(ok ? "\r\nSEND OK\r\n" : "\r\nSEND FAIL\r\n")
        case .sim800: emit("\r\n\(simPrefix(link))\(ok ? "SEND OK" : "SEND FAIL")\r\n")
        case .bg96: emit(ok ? "\r\nSEND OK\r\n" : "\r\nERROR\r\n")
        }
        busyEnded()
    }

    mutating func resolved(epoch: UInt64, name: String, addresses: [IPAddress]?) {
        guard epoch == bootEpoch else { return }
        switch dialect {
        case .espAT:
            guard busy == .resolving else { return }
            if let a = addresses?.first {
                let quoted = espVersion >= FirmwareVersion("2.0")
                emit(quoted ? "+CIPDOMAIN:\"\(a)\"\r\n\r\nOK\r\n" : "+CIPDOMAIN:\(a)\r\n\r\nOK\r\n")
            } else {
                emit(espVersion < FirmwareVersion("2.0") ? "DNS Fail\r\n\r\nERROR\r\n" : "\r\nERROR\r\n")
            }
            busyEnded()
        case .sim800:
            if let a = addresses?.first {
                emit("\r\n+CDNSGIP: 1,\"\(name)\",\"\(a)\"\r\n")
            } else {
                emit("\r\n+CDNSGIP: 0,8\r\n")
            }
        case .bg96:
            if let addresses, !addresses.isEmpty {
                var text = "\r\n+QIURC: \"dnsgip\",0,\(addresses.count),600\r\n"
                for a in addresses { text += "\r\n+QIURC: \"dnsgip\",\"\(a)\"\r\n" }
                emit(text)
            } else {
                emit("\r\n+QIURC: \"dnsgip\",565\r\n")
            }
        }
    }

    func simPrefix(_ link: Int) -> String { multiplexed ? "\(link), " : "" }
}
