import GenTCPCore
import Testing

@Suite("DatagramQueue")
struct DatagramQueueTests {
    let a = SocketAddress(.v4(0x0A00_0001), port: 1000)
    let b = SocketAddress(.loopbackV6, port: 2000)

    @Test("datagrams come out whole, in order, with their senders, across the ring's end")
    func fifoAcrossWrap() {
        var q = DatagramQueue(byteCapacity: 10, datagramCapacity: 4)
        #expect(push(&q, [1, 2, 3, 4, 5, 6], from: a))
        #expect(push(&q, [7, 8, 9], from: b))
        #expect(pop(&q)! == ([1, 2, 3, 4, 5, 6], a))
        // 3 used at offset 6..8: this one wraps around the end of the ring.
        #expect(push(&q, [10, 11, 12, 13, 14, 15], from: a))
        #expect(q.byteCount == 9)
        #expect(pop(&q)! == ([7, 8, 9], b))
        #expect(pop(&q)! == ([10, 11, 12, 13, 14, 15], a))
        #expect(pop(&q) == nil)
        #expect(q.isEmpty)
        #expect(q.dropped == 0)
    }

    @Test("a datagram that does not fit is dropped whole and counted; empty ones take a slot")
    func dropsWhole() {
        var q = DatagramQueue(byteCapacity: 8, datagramCapacity: 3)
        #expect(push(&q, [UInt8](repeating: 1, count: 5), from: a))
        #expect(!push(&q, [UInt8](repeating: 2, count: 4), from: a))
        #expect(push(&q, [], from: b))
        #expect(push(&q, [3, 3, 3], from: a))
        #expect(!push(&q, [], from: a))
        #expect(q.dropped == 2)
        #expect(q.count == 3)
        #expect(pop(&q)!.bytes == [1, 1, 1, 1, 1])
        #expect(pop(&q)! == ([], b))
        #expect(pop(&q)!.bytes == [3, 3, 3])
    }

    @Test("pop(into:) keeps what fits and reports the full length")
    func popIntoShortBuffer() {
        var q = DatagramQueue(byteCapacity: 16, datagramCapacity: 2)
        q.push([1, 2, 3, 4, 5, 6, 7, 8], from: a)
        q.push([9], from: b)
        var buffer = [UInt8](repeating: 0, count: 3)
        let got = buffer.withUnsafeMutableBytes { q.pop(into: $0) }
        #expect(got?.copied == 3)
        #expect(got?.length == 8)
        #expect(got?.source == a)
        #expect(buffer == [1, 2, 3])
        // The tail was discarded: the next pop is the next datagram.
        #expect(pop(&q)! == ([9], b))
    }

    @Test("reshape keeps what fits, oldest first, and counts the rest")
    func reshape() {
        var q = DatagramQueue(byteCapacity: 100, datagramCapacity: 10)
        for i in 0..<5 { q.push([UInt8](repeating: UInt8(i), count: 10), from: a) }
        q.reshape(byteCapacity: 25, datagramCapacity: 10)
        #expect(q.count == 2)
        #expect(q.dropped == 3)
        #expect(pop(&q)!.bytes.first == 0)
        #expect(pop(&q)!.bytes.first == 1)
    }

    @Test("a long random run matches a model queue")
    func modelCheck() {
        var q = DatagramQueue(byteCapacity: 1000, datagramCapacity: 20)
        var model: [([UInt8], SocketAddress)] = []
        var modelBytes = 0
        var dropped: UInt64 = 0
        var seed: UInt64 = 42
        func next() -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int(seed >> 33)
        }
        for step in 0..<20_000 {
            if next() % 3 != 0 {
                let n = next() % 200
                let bytes = (0..<n).map { UInt8(truncatingIfNeeded: step &+ $0) }
                let source = step % 2 == 0 ? a : b
                if model.count < 20 && modelBytes + n <= 1000 {
                    model.append((bytes, source))
                    modelBytes += n
                    #expect(push(&q, bytes, from: source))
                } else {
                    dropped += 1
                    #expect(!push(&q, bytes, from: source))
                }
            } else if let first = model.first {
                model.removeFirst()
                modelBytes -= first.0.count
                let got = pop(&q)
                #expect(got?.bytes == first.0)
                #expect(got?.source == first.1)
            } else {
                #expect(pop(&q) == nil)
            }
        }
        #expect(q.dropped == dropped)
        #expect(q.count == model.count)
        #expect(q.byteCount == modelBytes)
    }
}

@Suite("DatagramOptions")
struct DatagramOptionsTests {
    @Test("defaults, families and OTP's recbuf rule")
    func defaultsAndRecbuf() throws {
        let plain = try DatagramOptions(open: [])
        #expect(plain.buffer == 8192)
        #expect(plain.active == .active)
        #expect(plain.bindAddress == SocketAddress(.anyV4, port: 0))
        let six = try DatagramOptions(open: [.inet6, .localPort(5000)])
        #expect(six.isIPv6)
        #expect(six.bindAddress == SocketAddress(.anyV6, port: 5000))
        #expect(try DatagramOptions(open: [.localAddress(.loopbackV6)]).isIPv6)
        #expect(throws: SocketError.badArgument) { try DatagramOptions(open: [.inet6, .localAddress(.loopbackV4)]) }
        #expect(throws: SocketError.badArgument) { try DatagramOptions(open: [.nodelay(true)]) }
        var o = try DatagramOptions(open: [.recbuf(4000)])
        #expect(o.buffer == 8192)
        try o.apply(.recbuf(20_000))
        #expect(o.buffer == 20_000)
        try o.apply(.recbuf(1_000_000))
        #expect(o.buffer == 65_536)
        try o.apply(.buffer(100))
        try o.apply(.recbuf(200_000))
        #expect(o.buffer == 100)
        #expect(o.queueLimit.bytes == 200_000)
        #expect(o.queueLimit.datagrams == 781)
        #expect(try DatagramOptions(open: [.recbuf(1000)]).queueLimit.datagrams == 16)
    }

    @Test("setopts lists are atomic; values are range-checked")
    func atomic() throws {
        var o = DatagramOptions()
        #expect(throws: SocketError.invalidArgument) { try o.apply(all: [.buffer(10), .ttl(256)]) }
        #expect(o.buffer == 8192)
        #expect(throws: SocketError.invalidArgument) { try o.apply(.multicastTTL(-1)) }
        #expect(throws: SocketError.invalidArgument) { try o.apply(.addMembership(group: .v4(0x0A00_0001), interface: .anyV4)) }
        try o.apply(.addMembership(group: IPAddress(239, 1, 2, 3), interface: .anyV4))
        #expect(throws: SocketError.invalidArgument) { try o.apply(.localPort(1)) }
        let sendsPassive = try o.apply(all: [.active(.count(2)), .active(.count(-2))])
        #expect(sendsPassive)
        #expect(o.active == .passive)
        #expect(o.value(of: .addMembership) == nil)
        #expect(o.value(of: .nodelay) == nil)
    }
}

private func push(_ q: inout DatagramQueue, _ bytes: [UInt8], from source: SocketAddress) -> Bool {
    q.push(bytes, from: source)
}

private func pop(_ q: inout DatagramQueue) -> (bytes: [UInt8], source: SocketAddress)? {
    q.pop()
}
