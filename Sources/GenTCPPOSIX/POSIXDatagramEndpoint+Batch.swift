import CGenTCPShims
import GenTCP
import GenTCPCore
#if canImport(Glibc)
import Glibc
#endif

extension POSIXDatagramEndpoint {
    /// The most datagrams one `recvmmsg(2)`/`sendmmsg(2)` call moves (the shims' limit).
    static let batchLimit = 64
    /// The most buffer bytes one `recvmmsg(2)` call fills: large `buffer`s take fewer per call.
    static let batchBytes = 1 << 20

    /// `recvmmsg(2)` until `max` datagrams came or the queue is empty (or an error is pending).
    func receive(upTo max: Int, bufferSize: Int) -> (datagrams: [ReceivedDatagram], end: DatagramReceiveResult?) {
        guard isOpen else { return ([], .failed(.closed)) }
        var out: [ReceivedDatagram] = []
        let size = Swift.max(1, bufferSize)
        let perCall = Swift.max(1, Swift.min(Self.batchLimit, Self.batchBytes / size))
        while out.count < max {
            let want = Swift.min(perCall, max - out.count)
            let before = out.count
            if let end = receiveBatch(want, bufferSize: size, into: &out) { return (out, end) }
            // Fewer than asked: the queue was empty (or an error is pending, which readiness
            // reports). Say so now rather than learn it from one more `recvmmsg(2)`; the port
            // arms readiness, which fires at once if more came meanwhile.
            if out.count - before < want { return (out, .wouldBlock) }
        }
        return (out, nil)
    }

    /// One `recvmmsg(2)` of up to `count` datagrams appended to `out`; the reason to stop, or nil.
    private func receiveBatch(_ count: Int, bufferSize: Int, into out: inout [ReceivedDatagram]) -> DatagramReceiveResult? {
        var sources = [sockaddr_storage](repeating: sockaddr_storage(), count: count)
        var lengths = [UInt](repeating: 0, count: count)
        let (block, temporary) = receiveBlock(atLeast: count * bufferSize)
        defer { if temporary { block.deallocate() } }
        var drops = reportedDrops.load(ordering: .relaxed)
        var n: Int32
        repeat {
            n = cgentcp_recv_datagrams(
                fd, UInt32(count), block.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt(bufferSize),
                &sources, &lengths, &drops)
        } while n < 0 && cgentcp_errno() == EINTR
        if n < 0 { return Self.receiveFailure(errno: cgentcp_errno()) }
        noteDrops(drops)
        for i in 0..<Int(n) {
            guard let source = SocketAddress(storage: sources[i]) else { continue }
            let length = Int(lengths[i])
            let start = i * bufferSize
            let bytes = Array(block[start..<(start + Swift.min(length, bufferSize))])
            out.append(ReceivedDatagram(bytes: bytes, length: length, source: source))
        }
        return nil
    }

    /// ``receiveBlock``, grown to `size` bytes first when it is smaller; above ``batchBytes``
    /// (one datagram of a `buffer` over 1 MiB) a block for this call alone (`temporary`: the
    /// caller frees it), so that no endpoint keeps more than 1 MiB.
    private func receiveBlock(atLeast size: Int) -> (block: UnsafeMutableRawBufferPointer, temporary: Bool) {
        if let block = receiveBlock, block.count >= size { return (block, false) }
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
        if size > Self.batchBytes { return (block, true) }
        receiveBlock?.deallocate()
        receiveBlock = block
        return (block, false)
    }

    /// `sendmmsg(2)` in calls of at most ``batchLimit``, until all went or one could not.
    func send(batch: [OutgoingDatagram]) -> (sent: Int, end: DatagramSendResult?) {
        guard isOpen else { return (0, .failed(.closed)) }
        var sent = 0
        while sent < batch.count {
            let slice = batch[sent..<Swift.min(batch.count, sent + Self.batchLimit)]
            switch sendBatch(slice) {
            case .success(let n): sent += n
            case .failure(let stop): return (sent, stop.result)
            }
        }
        return (sent, nil)
    }

    /// One `sendmmsg(2)`: how many went (at least one), or why the first did not.
    private func sendBatch(_ slice: ArraySlice<OutgoingDatagram>) -> Result<Int, BatchStop> {
        var destinations = [sockaddr_storage](repeating: sockaddr_storage(), count: slice.count)
        var destinationLengths = [socklen_t](repeating: 0, count: slice.count)
        for (i, d) in slice.enumerated() {
            guard let to = d.destination else { continue }
            destinationLengths[i] = to.withSockaddr { sa, length in
                withUnsafeMutableBytes(of: &destinations[i]) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(length)))
                }
                return length
            }
        }
        return Self.pinned(Array(slice)) { iovecs -> Result<Int, BatchStop> in
            while true {
                let n = cgentcp_send_datagrams(fd, UInt32(iovecs.count), iovecs, &destinations, &destinationLengths)
                if n > 0 { return .success(Int(n)) }
                let e = n == 0 ? EAGAIN : cgentcp_errno()
                if e == EINTR { continue }
                return .failure(BatchStop(result: Self.sendFailure(errno: e)))
            }
        }
    }

    /// Why a batch send stopped (a result that is not `.sent`).
    struct BatchStop: Error {
        var result: DatagramSendResult
    }

    /// Calls `body` with one `iovec` per datagram, its bytes pinned for the call.
    private static func pinned<R>(_ datagrams: [OutgoingDatagram], _ body: ([iovec]) -> R) -> R {
        var iovecs: [iovec] = []
        iovecs.reserveCapacity(datagrams.count)
        func pin(_ i: Int) -> R {
            if i == datagrams.count { return body(iovecs) }
            return datagrams[i].bytes.withUnsafeBytes { p in
                iovecs.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: p.baseAddress), iov_len: p.count))
                return pin(i + 1)
            }
        }
        return pin(0)
    }
}
