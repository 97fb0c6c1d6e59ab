import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Testing

@Suite struct SmokeTests {
    @Test func echoOverLoopback() async throws {
        try await Process.run {
            let listener = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive)], driver: .posix)
            let port = try listener.port()
            let server = Process.spawn {
                let s = try await listener.accept(timeout: 2000)
                let data = try await s.recv(5, timeout: 2000)
                try await s.send(data.bytes)
                s.close()
            }
            let c = try await Socket.connect("127.0.0.1", port: port, options: [.binary, .active(.passive)], timeout: 2000, driver: .posix)
            try await c.send("hello")
            let back = try await c.recv(5, timeout: 2000)
            #expect(back == .binary(Array("hello".utf8)))
            await #expect(throws: SocketError.closed) { try await c.recv(0, timeout: 2000) }
            await #expect(throws: SocketError.notConnected) { try await c.recv(0, timeout: 2000) }
            _ = await server.waitForExit()
            c.close()
        }
    }

    @Test func activeMessages() async throws {
        try await Process.run {
            let listener = try ListenSocket.listen(port: 0, options: [.binary, .active(.passive)], driver: .posix)
            let port = try listener.port()
            let c = try await Socket.connect("localhost", port: port, options: [.binary], driver: .posix)
            let s = try await listener.accept(timeout: 2000)
            try await s.send("12345")
            s.close()
            let m1 = await Process.receive(timeout: 2000)
            guard case .tcp(let sock, let p)? = m1 else { Issue.record("no data: \(String(describing: m1))"); return }
            #expect(sock == c)
            #expect(p.bytes == Array("12345".utf8))
            let m2 = await Process.receive(timeout: 2000)
            guard case .tcpClosed(let sock2)? = m2 else { Issue.record("no close: \(String(describing: m2))"); return }
            #expect(sock2 == c)
            await #expect(throws: SocketError.closed) { try await c.send("x") }
        }
    }
}
