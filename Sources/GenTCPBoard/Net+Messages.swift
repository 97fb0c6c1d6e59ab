import GenTCPCore

extension Net where Interface: ~Copyable {
    /// The next message for the program, or nil when nothing is due at ``now``. Bytes in a
    /// message are valid until the next call.
    mutating func nextMessage() -> BoardMessage? {
        absorbInterfaceEvents()
        fireDeadlines()
        if let notice = notices.pop() { return notice }
        let count = sockets.count
        for step in 0..<count {
            let index = (scanCursor + step) % count
            if let message = deliver(index) {
                scanCursor = (index + 1) % count
                return message
            }
        }
        for li in listeners.indices where listeners[li].inUse && listeners[li].accepting {
            if let message = acceptOne(li) { return message }
        }
        return nil
    }

    /// The earliest deadline of the sockets, listeners and timers.
    var nextDeadline: MillisecondInstant? {
        var earliest: MillisecondInstant?
        func consider(_ deadline: MillisecondInstant?) {
            guard let deadline else { return }
            if earliest.map({ deadline < $0 }) ?? true { earliest = deadline }
        }
        for s in sockets where s.phase != .free {
            consider(s.connectDeadline)
            consider(s.recvDeadline)
        }
        for l in listeners where l.inUse && l.accepting { consider(l.acceptDeadline) }
        for t in timers where t.armed { consider(t.deadline) }
        return earliest
    }

    mutating func absorbInterfaceEvents() {
        while let event = interface.nextEvent() {
            switch event {
            case .up:
                if !interfaceUp {
                    interfaceUp = true
                    _ = notices.push(.networkUp)
                }
            case .down(let reason):
                interfaceUp = false
                for index in sockets.indices where sockets[index].phase == .connecting {
                    failConnect(index, reason)
                }
                for index in sockets.indices where sockets[index].phase == .open && sockets[index].failure == nil {
                    sockets[index].failure = reason
                }
                _ = notices.push(.networkDown(reason))
            case .connected(let link):
                guard let index = socketIndex(link), sockets[index].phase == .connecting else { continue }
                sockets[index].phase = .open
                sockets[index].connectDeadline = nil
                _ = notices.push(.connected(socket(index)))
            case .failed(let link, let reason):
                guard let index = socketIndex(link) else { continue }
                if sockets[index].phase == .connecting {
                    failConnect(index, reason)
                } else if sockets[index].failure == nil {
                    sockets[index].failure = reason
                }
            case .writable(let link):
                guard let index = socketIndex(link), sockets[index].wantSendable else { continue }
                sockets[index].wantSendable = false
                _ = notices.push(.sendable(socket(index)))
            case .readable, .acceptable:
                break  // the scan reads every socket and listener each turn
            }
        }
    }

    mutating func failConnect(_ index: Int, _ reason: SocketError) {
        let socket = self.socket(index)
        interface.abort(sockets[index].link, now: now)
        sockets[index].phase = .dead
        release(index, abortive: true)
        _ = notices.push(.connectFailed(socket, reason))
    }

    func socketIndex(_ link: InterfaceConnection) -> Int? {
        sockets.firstIndex { ($0.phase == .open || $0.phase == .connecting) && $0.link == link }
    }

    mutating func fireDeadlines() {
        for index in sockets.indices {
            if sockets[index].phase == .connecting, let deadline = sockets[index].connectDeadline, deadline <= now {
                failConnect(index, .timeout)
            }
            if sockets[index].phase == .open, sockets[index].recvLength >= 0, let deadline = sockets[index].recvDeadline,
               deadline <= now {
                sockets[index].recvLength = -1
                sockets[index].recvDeadline = nil
                _ = notices.push(.recvFailed(socket(index), .timeout))
            }
        }
        for li in listeners.indices where listeners[li].inUse && listeners[li].accepting {
            if let deadline = listeners[li].acceptDeadline, deadline <= now {
                listeners[li].accepting = false
                listeners[li].acceptDeadline = nil
                _ = notices.push(.acceptFailed(BoardListener(index: UInt16(li), generation: listeners[li].generation), .timeout))
            }
        }
        for index in timers.indices where timers[index].armed && timers[index].deadline <= now {
            timers[index].armed = false
            _ = notices.push(.timer(timers[index].tag))
        }
    }

    mutating func acceptOne(_ li: Int) -> BoardMessage? {
        guard let index = freeSlot() else { return nil }  // waits for a slot
        let accepted: InterfaceConnection?
        do throws(SocketError) {
            accepted = try interface.accept(listeners[li].link)
        } catch {
            listeners[li].accepting = false
            return .acceptFailed(BoardListener(index: UInt16(li), generation: listeners[li].generation), error)
        }
        guard let link = accepted else { return nil }
        open(index, link: link, options: listeners[li].options, phase: .open)
        listeners[li].accepting = false
        listeners[li].acceptDeadline = nil
        return .accepted(BoardListener(index: UInt16(li), generation: listeners[li].generation), socket(index))
    }

    /// One delivery for socket `index`, if any is due: an active message or a recv's answer.
    mutating func deliver(_ index: Int) -> BoardMessage? {
        guard sockets[index].phase == .open, !sockets[index].endReported else { return nil }
        let socket = self.socket(index)
        let options = sockets[index].options
        if options.active.delivers {
            let room = UnsafeMutableRawBufferPointer(rebasing: delivery[0..<min(options.buffer, delivery.count)])
            do throws(SocketError) {
                guard let n = try readOrEnd(index, into: room) else { return nil }
                sockets[index].statistics.delivered(n)
                let change = options.active.afterDelivery()
                sockets[index].options.active = change.mode
                if change.sendsPassive { _ = notices.push(.tcpPassive(socket)) }
                return .tcp(socket, UnsafeRawBufferPointer(rebasing: delivery[0..<n]))
            } catch {
                return deliverEnd(index, error)
            }
        }
        let length = sockets[index].recvLength
        guard length >= 0 else { return nil }
        if length == 0 {
            let room = UnsafeMutableRawBufferPointer(rebasing: delivery[0..<min(options.buffer, delivery.count)])
            do throws(SocketError) {
                guard let n = try readOrEnd(index, into: room) else { return nil }
                finishRecv(index, delivered: n)
                return .received(socket, UnsafeRawBufferPointer(rebasing: delivery[0..<n]))
            } catch {
                finishRecv(index, delivered: nil)
                return .recvFailed(socket, error)
            }
        }
        let link = sockets[index].link
        if interface.readableCount(link) >= length {
            var filled = 0
            while filled < length {
                let room = UnsafeMutableRawBufferPointer(rebasing: delivery[filled..<length])
                do throws(SocketError) {
                    guard let n = try readOrEnd(index, into: room) else { break }
                    filled += n
                } catch {
                    finishRecv(index, delivered: nil)
                    return .recvFailed(socket, error)
                }
            }
            guard filled == length else { return nil }  // cannot happen: the count said so
            finishRecv(index, delivered: length)
            return .received(socket, UnsafeRawBufferPointer(rebasing: delivery[0..<length]))
        }
        if interface.peerFinished(link) || sockets[index].failure != nil {
            // Fewer bytes than asked will ever come: OTP answers `closed` and drops the tail.
            let failure = sockets[index].failure
            sockets[index].endReported = true
            finishRecv(index, delivered: nil)
            return .recvFailed(socket, failure.flatMap { shown($0, options) } ?? .closed)
        }
        return nil
    }

    mutating func finishRecv(_ index: Int, delivered: Int?) {
        sockets[index].recvLength = -1
        sockets[index].recvDeadline = nil
        if let delivered { sockets[index].statistics.delivered(delivered) }
    }

    /// The end of an active socket's stream: `tcp_error` (when shown) then `tcp_closed`; with
    /// `exit_on_close` the socket is dead afterwards (calls answer `closed`, setopts `einval`).
    mutating func deliverEnd(_ index: Int, _ error: SocketError) -> BoardMessage {
        let socket = self.socket(index)
        sockets[index].endReported = true
        let failed = error.reason != .closed && error.reason != .notConnected
        if sockets[index].options.exitOnClose || failed {
            if failed { interface.abort(sockets[index].link, now: now) } else { interface.close(sockets[index].link, now: now) }
            sockets[index].phase = .dead
        }
        if error.reason == .closed || error.reason == .notConnected {
            return .tcpClosed(socket)
        }
        _ = notices.push(.tcpClosed(socket))
        return .tcpError(socket, error.reason)
    }
}
