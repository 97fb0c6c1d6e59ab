import GenTCP
import GenTCPCore
import Testing

/// How the bulk test moves its 8 MiB.
enum BulkStyle: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case upload
    case downloadPassive
    case downloadActive
    case downloadOnce
    case downloadActiveN

    var testDescription: String { rawValue }
}

/// One cell of AtomVM's listen/connect matrix.
struct MatrixCell: Sendable, CustomTestStringConvertible {
    var listenMode: Mode
    var connectMode: Mode
    var listenActive: Bool
    var connectActive: Bool

    static let all: [MatrixCell] = {
        var cells: [MatrixCell] = []
        for lm in [Mode.binary, .list] {
            for cm in [Mode.binary, .list] {
                for la in [true, false] {
                    for ca in [true, false] {
                        cells.append(MatrixCell(listenMode: lm, connectMode: cm, listenActive: la, connectActive: ca))
                    }
                }
            }
        }
        return cells
    }()

    var testDescription: String {
        "listen \(listenMode) \(listenActive ? "active" : "passive"), connect \(connectMode) \(connectActive ? "active" : "passive")"
    }
}

/// Reads `count` bytes in the socket's current style: `recv(count)` when passive, `tcp`
/// messages (re-arming `once`) when active. Returns the payloads as delivered.
func receiveExactly(_ s: Socket, _ count: Int, active: ActiveMode) async throws -> [Payload] {
    switch active {
    case .passive:
        return [try await s.recv(count, timeout: 30_000)]
    default:
        var got: [Payload] = []
        var total = 0
        while total < count {
            let m = await next()
            guard case .tcp(let sock, let p) = m, sock == s else {
                throw TestFailure("expected data on \(s), got \(m) after \(total) of \(count) bytes")
            }
            got.append(p)
            total += p.count
            if active == .once && total < count { try s.setopts(.active(.once)) }
        }
        if active == .once { try s.setopts(.active(.once)) }
        return got
    }
}

extension Conformance {
    @Suite("K Bulk transfer and echo")
    struct Bulk {
        static let chunk = 1 << 16

        @Test("K77 8 MiB each way, every receive style (FNV-1a 64 + length)", arguments: Backend.all, BulkStyle.allCases)
        func eightMiB(_ backend: Backend, style: BulkStyle) async throws {
            try await backend.run { ctx in
                let data = Pattern.eightMiB
                let expected = Pattern.eightMiBDigest
                let (c, p) = try await ctx.pair()
                let sender = style == .upload ? c : p
                let writer = ctx.spawn {
                    var offset = 0
                    while offset < data.count {
                        try await sender.send(data[offset..<offset + Bulk.chunk])
                        offset += Bulk.chunk
                    }
                    sender.close()
                }
                let receiver = style == .upload ? p : c
                var digest = Digest()
                var largest = 0
                switch style {
                case .upload, .downloadPassive:
                    while true {
                        do throws(SocketError) {
                            let got = try await receiver.recv(0, timeout: 30_000)
                            largest = max(largest, got.count)
                            digest.update(got.bytes)
                        } catch {
                            #expect(error.reason == .closed)
                            break
                        }
                    }
                case .downloadActive, .downloadOnce, .downloadActiveN:
                    let mode: ActiveMode = style == .downloadActive ? .active : style == .downloadOnce ? .once : .count(100)
                    try c.setopts(.active(mode))
                    loop: while true {
                        switch await next() {
                        case .tcp(let s, let payload) where s == c:
                            largest = max(largest, payload.count)
                            digest.update(payload.bytes)
                            if style == .downloadOnce { try? c.setopts(.active(.once)) }
                        case .tcpPassive(let s) where s == c:
                            try c.setopts(.active(.count(100)))
                        case .tcpClosed(let s) where s == c:
                            break loop
                        case let other:
                            Issue.record("unexpected \(other) after \(digest.length) bytes")
                            break loop
                        }
                    }
                }
                try await writer.value(within: 10000)
                #expect(digest == expected)
                #expect(largest <= 1460, "no delivery exceeds buffer")
                #expect(await next(20) == .none)
                receiver.close()
            }
        }

        static let echoSizes = [1, 2, 3, 4, 7, 10, 13, 126, 127, 128, 255, 256, 1023, 3747, 32767, 32768,
                                65531, 65535, 65536, 70000]

        /// P, in its own process: echoes everything until the end of stream; returns the byte count.
        static func echoServer(_ ctx: TestContext, _ p: Socket) -> Spawned<Int> {
            ctx.spawn { () async throws -> Int in
                var echoed = 0
                while true {
                    do throws(SocketError) {
                        let got = try await p.recv(0, timeout: 30_000)
                        try await p.send(got.bytes)
                        echoed += got.count
                    } catch {
                        #expect(error.reason == .closed)
                        p.close()
                        return echoed
                    }
                }
            }
        }

        @Test("K78 echo sizes", arguments: Backend.all, [ActiveMode.passive, .active, .once])
        func echoSizes(_ backend: Backend, mode: ActiveMode) async throws {
            // OTP's {delay_send,true} repetition has no GenTCP option: not applicable.
            try await backend.run { ctx in
                #expect(Bulk.echoSizes.reduce(0, +) == 337839)
                let (c, p) = try await ctx.pair(client: [.binary, .active(mode)])
                let server = Bulk.echoServer(ctx, p)
                for size in Bulk.echoSizes {
                    let message = Pattern.bytes(count: size, seed: UInt64(size))
                    try await c.send(message)
                    let back = try await receiveExactly(c, size, active: mode)
                    #expect(Array(back.map(\.bytes).joined()) == message, "size \(size)")
                    #expect(back.allSatisfy { $0.mode == .binary })
                }
                c.close()
                #expect(try await server.value() == 337839)
            }
        }

        @Test("K79 slow echo, one byte per segment: exact recvs reassemble", arguments: Backend.all)
        func slowEcho(_ backend: Backend) async throws {
            try await backend.run { ctx in
                let (c, p) = try await ctx.pair(server: [.binary, .active(.passive), .nodelay(true)])
                let server = ctx.spawn { () async throws -> Int in
                    var echoed = 0
                    while true {
                        do throws(SocketError) {
                            for b in try await p.recv(0, timeout: 30_000).bytes {
                                try await p.send([b])
                                echoed += 1
                                await ctx.sleep(1)
                            }
                        } catch {
                            p.close()
                            return echoed
                        }
                    }
                }
                for size in [1, 2, 3, 4, 7, 64] {
                    let message = Pattern.bytes(count: size, seed: UInt64(size) + 7)
                    try await c.send(message)
                    #expect(try await c.recv(size, timeout: 30_000).bytes == message, "size \(size)")
                }
                c.close()
                #expect(try await server.value() == 81)
            }
        }

        @Test("K80 listen/connect matrix: each side's data has its own mode", arguments: Backend.all, MatrixCell.all)
        func matrix(_ backend: Backend, cell: MatrixCell) async throws {
            try await backend.run { ctx in
                let serverActive: ActiveMode = cell.listenActive ? .active : .passive
                let clientActive: ActiveMode = cell.connectActive ? .active : .passive
                let l = try ctx.listen([.mode(cell.listenMode), .active(serverActive), .buffer(32)])
                let port = try l.port()
                let server = ctx.spawn { () async throws -> [String] in
                    var problems: [String] = []
                    let s = try await l.accept(timeout: 30_000)
                    for i in 1...10 {
                        let n = "message \(i)".utf8.count
                        let got = try await receiveExactly(s, n, active: serverActive)
                        if !got.allSatisfy({ $0.mode == cell.listenMode }) { problems.append("server got \(got)") }
                        try await s.send(Array(got.map(\.bytes).joined()))
                    }
                    if cell.listenActive {
                        let m = await next()
                        if m != .tcpClosed(s) { problems.append("server expected tcp_closed, got \(m)") }
                    } else {
                        do throws(SocketError) {
                            let extra = try await s.recv(0, timeout: 30_000)
                            problems.append("server expected closed, got \(extra)")
                        } catch {
                            if error.reason != .closed { problems.append("server expected closed, got \(error)") }
                        }
                    }
                    s.close()
                    return problems
                }
                let c = try await ctx.connect(port: port, [.mode(cell.connectMode), .active(clientActive)])
                for i in 1...10 {
                    let message = bytes("message \(i)")
                    try await c.send(message)
                    let back = try await receiveExactly(c, message.count, active: clientActive)
                    #expect(Array(back.map(\.bytes).joined()) == message)
                    #expect(back.allSatisfy { $0.mode == cell.connectMode }, "client got \(back)")
                }
                c.close()
                #expect(try await server.value() == [])
                l.close()
            }
        }
    }
}
