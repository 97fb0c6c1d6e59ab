import DequeModule
import GenTCP
import GenTCPCore

// Moving bytes: reads, writes, segments on the line, FIN and RST, closing.

extension SimWorld {
    func read(_ link: Link, _ side: Int, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        let end = link.ends[side]
        guard end.state == .open else { return .failed(.notConnected) }
        let p = link.pipes[1 - side]
        if p.buffered > 0 {
            guard buffer.count > 0 else { return .wouldBlock }
            var copied = 0
            while copied < buffer.count, let head = p.buffer.first {
                let n = min(buffer.count - copied, head.count - p.headOffset)
                head.withUnsafeBytes { raw in
                    let source = UnsafeRawBufferPointer(rebasing: raw[p.headOffset..<p.headOffset + n])
                    UnsafeMutableRawBufferPointer(rebasing: buffer[copied..<copied + n]).copyMemory(from: source)
                }
                copied += n
                p.headOffset += n
                if p.headOffset == head.count {
                    p.buffer.removeFirst()
                    p.headOffset = 0
                }
            }
            p.buffered -= copied
            // The freed room reaches the sender one latency later.
            let back = latency(link.hosts[side], link.hosts[1 - side], link.faults)
            _ = schedule(after: back, .windowUpdate(link: link.id, direction: 1 - side, bytes: copied))
            return .bytes(copied)
        }
        if end.resetReceived {
            end.resetReported = true
            return .failed(.connectionReset)
        }
        if p.finArrived || end.readShut { return .endOfStream }
        return .wouldBlock
    }

    func write(_ link: Link, _ side: Int, _ chunks: [UnsafeRawBufferPointer]) -> IOResult {
        let end = link.ends[side]
        guard end.state == .open else { return .failed(.notConnected) }
        if end.resetReceived {
            if end.resetReported { return .failed(.brokenPipe) }
            end.resetReported = true
            return .failed(.connectionReset)
        }
        if end.writeShut { return .failed(.brokenPipe) }
        let p = link.pipes[side]
        var offered = 0
        for c in chunks { offered += c.count }
        guard offered > 0 else { return .wouldBlock }
        guard p.space > 0 else { return .wouldBlock }
        var n = min(offered, p.space)
        let f = link.faults
        if n > 1 && f.shortWriteProbability > 0 && rng.chance(f.shortWriteProbability) {
            let accepted = 1 + Int(rng.upTo(UInt64(n - 2)))
            stats.faults += 1
            record(link.id, .fault(.shortWrite(offered: n, accepted: accepted)))
            n = accepted
        }
        // Gather the n bytes in stream order.
        var bytes = [UInt8]()
        bytes.reserveCapacity(n)
        var left = n
        for c in chunks where left > 0 {
            let k = min(left, c.count)
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: c[0..<k]))
            left -= k
        }
        p.unacked += n
        transmit(link, side, bytes)
        return .bytes(n)
    }

    /// Cuts written bytes into segments and puts them on the line, applying the link's faults.
    private func transmit(_ link: Link, _ d: Int, _ bytes: [UInt8]) {
        let p = link.pipes[d]
        let f = link.faults
        let mss = max(1, configuration.segmentSize)
        var offset = 0
        while offset < bytes.count && !p.cut {
            var length = min(mss, bytes.count - offset)
            var resetAfter = false
            if let limit = f.resetAfterBytes {
                let room = limit - p.sent
                if room <= 0 {
                    middleboxReset(link, d)
                    break
                }
                if length >= room {
                    length = room
                    resetAfter = true
                }
            }
            if f.resetProbability > 0 && rng.chance(f.resetProbability) {
                middleboxReset(link, d)
                break
            }
            sendData(link, d, Array(bytes[offset..<offset + length]))
            p.sent += length
            offset += length
            if resetAfter { middleboxReset(link, d) }
        }
    }

    private func sendData(_ link: Link, _ d: Int, _ bytes: [UInt8]) {
        let p = link.pipes[d]
        let f = link.faults
        let from = link.hosts[d], to = link.hosts[1 - d]
        let t = now
        var departure = t
        var arrival = t
        if let rate = profile(from, to).bytesPerSecond, rate > 0 {
            let key = DirectedPair(from: from, to: to)
            departure = max(t, lineFreeAt[key] ?? 0)
            let r = UInt64(rate)
            let transmission = (UInt64(bytes.count) * 1_000_000_000 + r - 1) / r
            arrival = departure + transmission
            lineFreeAt[key] = arrival
        }
        arrival += latency(from, to, f)
        let jitter = f.jitter.simNanoseconds
        if jitter > 0 { arrival += rng.upTo(jitter) }
        if f.stallProbability > 0 && rng.chance(f.stallProbability) {
            let stall = f.stallDuration.simNanoseconds
            stats.faults += 1
            record(link.id, .fault(.stall(nanoseconds: stall)))
            arrival += stall
        }
        enqueue(link, d, .data(bytes), departure: departure, arrival: arrival)
        p.inFlightBytes += bytes.count
        notePeak(p)
    }

    /// Puts a segment on pipe `d`, in order behind everything already there.
    private func enqueue(_ link: Link, _ d: Int, _ kind: Segment.Kind, departure: UInt64, arrival: UInt64) {
        let p = link.pipes[d]
        let at = max(arrival, p.lastArrival)
        p.lastArrival = at
        let timer = schedule(at: at, .arrival(link: link.id, direction: d))
        p.segments.append(Segment(kind: kind, departure: departure, arrival: at, timer: timer))
    }

    private func sendControl(_ link: Link, _ d: Int, _ kind: Segment.Kind) {
        let delay = latency(link.hosts[d], link.hosts[1 - d], link.faults)
        enqueue(link, d, kind, departure: now, arrival: now + delay)
    }

    /// The network resets the connection (a fault): each side gets an RST behind what is
    /// already in flight towards it, and nothing more goes either way.
    private func middleboxReset(_ link: Link, _ d: Int) {
        stats.faults += 1
        record(link.id, .fault(.reset(afterBytes: link.pipes[d].sent)))
        for dir in [d, 1 - d] where !link.pipes[dir].cut {
            link.pipes[dir].cut = true
            sendControl(link, dir, .rst)
        }
    }

    /// Side `side` sends an RST: segments that have not left yet are dropped, the RST follows
    /// those on the line.
    private func sendReset(_ link: Link, from side: Int) {
        let p = link.pipes[side]
        guard !p.cut else { return }
        p.cut = true
        let t = now
        var kept = Deque<Segment>()
        for s in p.segments {
            if s.departure > t, case .data(let bytes) = s.kind {
                runtime.cancel(s.timer)
                p.inFlightBytes -= bytes.count
            } else {
                kept.append(s)
            }
        }
        p.segments = kept
        p.lastArrival = kept.last?.arrival ?? 0
        sendControl(link, side, .rst)
    }

    func arrive(_ link: Link, _ d: Int) {
        let p = link.pipes[d]
        let receiver = link.ends[1 - d]
        let direction = Link.direction(d)
        let t = now
        while let head = p.segments.first, head.arrival <= t {
            p.segments.removeFirst()
            switch head.kind {
            case .data(let bytes):
                p.inFlightBytes -= bytes.count
                switch receiver.state {
                case .gone:
                    break
                case .closed:
                    // Nobody will read this: answer with an RST (Linux does, for a closed socket).
                    receiver.state = .gone
                    sendReset(link, from: 1 - d)
                case .open:
                    p.buffer.append(bytes)
                    p.buffered += bytes.count
                    stats.segments += 1
                    stats.bytesDelivered += bytes.count
                    record(link.id, .data(direction, bytes: bytes.count))
                    notePeak(p)
                    notifyReadable(link, 1 - d)
                }
            case .fin:
                p.finArrived = true
                record(link.id, .fin(direction))
                notifyReadable(link, 1 - d)
            case .rst:
                record(link.id, .reset(direction))
                receiveReset(link, side: 1 - d)
            }
        }
        collect(link)
    }

    private func receiveReset(_ link: Link, side: Int) {
        let end = link.ends[side]
        guard !end.resetReceived else { return }
        end.resetReceived = true
        // Whatever this side still had going out dies with the connection (RSTs excepted).
        let out = link.pipes[side]
        out.cut = true
        var kept = Deque<Segment>()
        for s in out.segments {
            switch s.kind {
            case .rst: kept.append(s)
            case .data(let bytes):
                runtime.cancel(s.timer)
                out.inFlightBytes -= bytes.count
            case .fin:
                runtime.cancel(s.timer)
            }
        }
        out.segments = kept
        out.lastArrival = kept.last?.arrival ?? out.lastArrival
        switch end.state {
        case .open:
            notifyReadable(link, side)
            notifyWritable(link, side)
        case .closed:
            end.state = .gone
        case .gone:
            break
        }
    }

    func armRead(_ link: Link, _ side: Int) {
        link.ends[side].readArmed = true
        notifyReadable(link, side)
    }

    func armWrite(_ link: Link, _ side: Int) {
        link.ends[side].writeArmed = true
        notifyWritable(link, side)
    }

    func shutdown(_ link: Link, _ side: Int, _ how: ShutdownHow) -> SocketError.Reason? {
        let end = link.ends[side]
        guard end.state == .open else { return .notConnected }
        if end.resetReceived { return .notConnected }
        if how != .read && !end.writeShut {
            end.writeShut = true
            if !link.pipes[side].cut { sendControl(link, side, .fin) }
            notifyWritable(link, side)
        }
        if how != .write {
            end.readShut = true
            notifyReadable(link, side)
        }
        return nil
    }

    /// Closes one side: gracefully (FIN after the data, or an RST when received data is left
    /// unread, as Linux does), or abortively (RST).
    func close(_ link: Link, side: Int, abortive: Bool) {
        let end = link.ends[side]
        end.delegate = nil
        end.readArmed = false
        end.writeArmed = false
        guard end.state == .open else { return }
        if abortive || link.pipes[1 - side].buffered > 0 {
            abort(link, side: side)
            return
        }
        if !end.writeShut && !end.resetReceived {
            end.writeShut = true
            if !link.pipes[side].cut { sendControl(link, side, .fin) }
        }
        end.state = end.resetReceived ? .gone : .closed
        collect(link)
    }

    /// Side `side` goes away with an RST (linger 0, unread data at close, a failed connect).
    func abort(_ link: Link, side: Int) {
        let end = link.ends[side]
        end.delegate = nil
        end.readArmed = false
        end.writeArmed = false
        let received = link.pipes[1 - side]
        received.buffer.removeAll()
        received.headOffset = 0
        received.buffered = 0
        if !end.resetReceived { sendReset(link, from: side) }
        end.state = .gone
        collect(link)
    }
}
