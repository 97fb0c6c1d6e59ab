import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import GenTCPSim
import GenTCPStack
import GenTCPWire
import Testing

@Suite("slip driver over a simulated line", .timeLimit(.minutes(2)))
struct SLIPDriverTests {
    @Test("echo: bytes come back, addresses are the line's")
    func echo() async throws {
        let line = try SLIPLine()
        let listener = try line.startEcho()
        try await line.run {
            let s = try await Socket.connect("board", port: 7, options: [.binary, .active(.passive)], driver: line.host)
            #expect(try s.peername() == SocketAddress(slipBoard, port: 7))
            #expect(try s.sockname().address == slipHost)
            try await s.send("hello, board")
            let back = try await s.recv(12, timeout: 5000)
            #expect(back.bytes == Array("hello, board".utf8))
            s.close()
            listener.close()
        }
    }

    @Test("connect to a port nobody listens on is econnrefused")
    func refused() async throws {
        let line = try SLIPLine()
        try await line.run {
            await #expect(throws: SocketError(.connectionRefused)) {
                _ = try await Socket.connect(.address(slipBoard), port: 4242, options: [.binary], timeout: 5000,
                                             driver: line.host)
            }
        }
    }

    @Test("names: the board's name resolves, others are nxdomain")
    func names() async throws {
        let line = try SLIPLine()
        #expect(try await line.host.resolve("board", preference: .ipv4Preferred) == [slipBoard])
        #expect(try await line.host.resolve("10.0.0.9", preference: .ipv4Preferred) == [IPAddress(10, 0, 0, 9)])
        await #expect(throws: SocketError(.nonExistentDomain)) {
            _ = try await line.host.resolve("example.com", preference: .ipv4Preferred)
        }
        line.host.close()
        line.board.close()
    }

    @Test("connect honours its timeout when the board is silent; a hung-up line is eio")
    func connectTimeout() async throws {
        let net = try SimNetwork(seed: 1)
        let (a, b) = try MemoryLink.pair(runtime: net.runtime)
        let host = try SLIPDriver(link: a, configuration: SLIPConfiguration(local: slipHost, peer: slipBoard),
                                  runtime: net.runtime)
        try await net.run {
            let start = net.runtime.now
            await #expect(throws: SocketError(.timeout)) {
                _ = try await Socket.connect(.address(slipBoard), port: 7, options: [.binary], timeout: 1500,
                                             driver: host)
            }
            let waited = net.runtime.now - start
            #expect(waited >= 1_500_000_000 && waited < 1_600_000_000)
            b.close()  // The board's end goes away.
            await net.runtime.sleep(nanoseconds: 1_000_000)
            await #expect(throws: SocketError(.ioError)) {
                _ = try await Socket.connect(.address(slipBoard), port: 7, options: [.binary], timeout: 1500,
                                             driver: host)
            }
        }
        host.close()
    }

    @Test("ping: the board answers; the round trip is the line time of request and reply")
    func ping() async throws {
        let line = try SLIPLine()
        try await line.run {
            let rtt = try await line.host.ping(payloadSize: 56)
            // 84-byte datagrams, 86+ line bytes each way at 11520 B/s: about 15 ms.
            #expect(rtt > .milliseconds(14) && rtt < .milliseconds(40))
            let back = try await line.board.ping(payloadSize: 500)
            #expect(back > .milliseconds(80))
            await #expect(throws: SocketError(.messageTooLong)) {
                _ = try await line.host.ping(payloadSize: 1000)
            }
            await #expect(throws: SocketError(.timeout)) {
                _ = try await line.host.ping(IPAddress(10, 0, 0, 99), timeout: 500)
            }
        }
        #expect(line.host.statistics.stack.echoRepliesReceived == 1)
        #expect(line.host.statistics.stack.echoRequestsAnswered == 1)
    }
}
