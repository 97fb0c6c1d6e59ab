import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import GenTCPSim
import GenTCPStack
import GenTCPWire
import Synchronization
import Testing

/// Reads until the socket ends; returns the bytes and how it ended (nil for end of stream).
private func readUntilEnd(_ s: Socket) async -> ([UInt8], SocketError?) {
    var all: [UInt8] = []
    while true {
        do throws(SocketError) {
            all += try await s.recv(0, timeout: 60_000).bytes
        } catch {
            return (all, error.reason == .closed ? nil : error)
        }
    }
}

/// The serial line going away under the slip driver is an error (`eio`), never an end of stream:
/// only the peer's FIN ends a stream (DESIGN.md, principle 7).
@Suite("slip driver when the line goes away", .timeLimit(.minutes(2)))
struct SLIPLinkLossTests {
    @Test("line hung up mid-download, passive: the bytes that came, then eio; the incident counts them")
    func hangUpPassive() async throws {
        let line = try SLIPLine()
        let data = pattern(200_000, seed: 5)
        let listener = try line.startSource(data: data)
        try await line.run {
            let s = try await Socket.connect("board", port: 19, options: [.binary, .active(.passive), .buffer(8192)],
                                             timeout: 5000, driver: line.host)
            var got: [UInt8] = []
            while got.count < 30_000 { got += try await s.recv(0, timeout: 5000).bytes }
            line.boardLink.close()  // The board's end of the line goes away (no FIN, no RST).
            let (rest, end) = await readUntilEnd(s)
            got += rest
            #expect(end == SocketError(.ioError))
            #expect(got.count < data.count)
            #expect(Array(data[0..<got.count]) == got, "what arrived before the hang-up is intact")
            #expect(line.host.lastIncident == "the serial line hung up")
            // New work on the dead line fails the same way.
            await #expect(throws: SocketError(.ioError)) {
                _ = try await Socket.connect("board", port: 19, options: [.binary], timeout: 1000, driver: line.host)
            }
            #expect(throws: SocketError(.ioError)) {
                _ = try ListenSocket.listen(port: 5000, options: [.binary], driver: line.host)
            }
            s.close()
            listener.close()
        }
    }

    @Test("line hung up mid-download, active: tcp messages, then tcp_error eio, then tcp_closed")
    func hangUpActive() async throws {
        let line = try SLIPLine()
        let data = pattern(200_000, seed: 6)
        let listener = try line.startSource(data: data)
        try await line.run {
            let s = try await Socket.connect("board", port: 19, options: [.binary, .active(.active), .buffer(8192)],
                                             timeout: 5000, driver: line.host)
            var got: [UInt8] = []
            var closedLine = false
            var ends: [String] = []
            loop: while true {
                guard let message = try await Process.receive(timeout: 10_000) else {
                    ends.append("timeout")
                    break
                }
                switch message {
                case .tcp(_, let payload):
                    #expect(ends.isEmpty, "no data after the end")
                    got += payload.bytes
                    if !closedLine && got.count >= 30_000 {
                        closedLine = true
                        line.boardLink.close()
                    }
                case .tcpError(_, let reason):
                    ends.append("tcp_error \(reason.atom)")
                case .tcpClosed:
                    ends.append("tcp_closed")
                    break loop
                default:
                    ends.append("\(message)")
                }
            }
            #expect(ends == ["tcp_error eio", "tcp_closed"])
            #expect(got.count < data.count)
            #expect(Array(data[0..<got.count]) == got)
            s.close()
            listener.close()
        }
    }

    @Test("a pending connect and a pending ping fail with eio when the line hangs up, not at their timeouts")
    func pendingFail() async throws {
        let net = try SimNetwork(seed: 3)
        let (a, b) = try MemoryLink.pair(runtime: net.runtime)
        let host = try SLIPDriver(link: a, configuration: SLIPConfiguration(local: slipHost, peer: slipBoard),
                                  runtime: net.runtime)
        let outcomes = Mutex<[String: (SocketError?, UInt64)]>([:])
        try await net.run {
            let start = net.runtime.now
            net.spawn {
                do throws(SocketError) {
                    _ = try await Socket.connect(.address(slipBoard), port: 7, options: [.binary], timeout: 5000,
                                                 driver: host)
                    outcomes.withLock { $0["connect"] = (nil, net.runtime.now - start) }
                } catch {
                    outcomes.withLock { $0["connect"] = (error, net.runtime.now - start) }
                }
            }
            net.spawn {
                do throws(SocketError) {
                    _ = try await host.ping(timeout: .seconds(5))
                    outcomes.withLock { $0["ping"] = (nil, net.runtime.now - start) }
                } catch {
                    outcomes.withLock { $0["ping"] = (error, net.runtime.now - start) }
                }
            }
            await net.runtime.sleep(nanoseconds: 200_000_000)
            #expect(outcomes.withLock { $0.isEmpty }, "the board is silent: both still wait")
            b.close()
            await net.runtime.sleep(nanoseconds: 100_000_000)
        }
        let result = outcomes.withLock { $0 }
        #expect(result["connect"]?.0 == SocketError(.ioError))
        #expect(result["ping"]?.0 == SocketError(.ioError))
        #expect((result["connect"]?.1 ?? .max) < 300_000_000)
        #expect((result["ping"]?.1 ?? .max) < 300_000_000)
        #expect(host.lastIncident == "the serial line hung up")
        host.close()
        #expect(host.lastIncident == "the serial line hung up", "the user's stop does not overwrite it")
    }

    @Test("the user's own stop of the driver is enetdown for recv, send, connect, listen and ping, and no incident")
    func userStopIsNetworkDown() async throws {
        let line = try SLIPLine()
        let listener = try line.startEcho()
        try await line.run {
            // One socket per operation: after a socket's first error the port layer answers
            // `closed` (OTP's rule), so each checks the driver's own answer.
            let s = try await Socket.connect("board", port: 7, options: [.binary, .active(.passive)], timeout: 5000,
                                             driver: line.host)
            let t = try await Socket.connect("board", port: 7, options: [.binary, .active(.passive)], timeout: 5000,
                                             driver: line.host)
            try await s.send("ping")
            #expect(try await s.recv(4, timeout: 5000).bytes == Array("ping".utf8))
            line.host.close()
            await #expect(throws: SocketError(.networkDown)) { _ = try await s.recv(0, timeout: 1000) }
            await #expect(throws: SocketError(.networkDown)) { try await t.send("more") }
            await #expect(throws: SocketError(.networkDown)) {
                _ = try await Socket.connect("board", port: 7, options: [.binary], timeout: 1000, driver: line.host)
            }
            #expect(throws: SocketError(.networkDown)) { _ = try ListenSocket.listen(port: 8, driver: line.host) }
            await #expect(throws: SocketError(.networkDown)) { _ = try await line.host.ping() }
            s.close()
            t.close()
            listener.close()
        }
        #expect(line.host.lastIncident == nil)
    }

    @Test("on a pty: the far side's master closed mid-download is eio, with the bytes before it intact")
    func hangUpOnPTY() async throws {
        let pair = try PTYLink.openPair(configuration: SerialConfiguration(baudRate: 921_600))
        // Our driver on the slave; the board (a second slip driver) on the master, whose closing
        // is the line going away.
        let host = try SLIPDriver(link: pair.slave, configuration: SLIPConfiguration(local: slipHost, peer: slipBoard))
        let board = try SLIPDriver(link: pair.master, configuration: SLIPConfiguration(
            local: slipBoard, peer: slipHost, peerName: "host", seed: 99))
        defer {
            host.close()
            board.close()
        }
        let data = pattern(400_000, seed: 8)
        let listener = try ListenSocket.listen(port: 19, options: [.binary, .active(.passive)], driver: board)
        defer { listener.close() }
        Process.spawn {
            let s = try await listener.accept(timeout: 60_000)
            defer { s.close() }
            try await sendAll(s, data)
        }
        let s = try await Socket.connect("board", port: 19, options: [.binary, .active(.passive), .buffer(8192)],
                                         timeout: 60_000, driver: host)
        defer { s.close() }
        var got: [UInt8] = []
        while got.count < 40_000 { got += try await s.recv(0, timeout: 60_000).bytes }
        pair.master.close()
        let (rest, end) = await readUntilEnd(s)
        got += rest
        #expect(end == SocketError(.ioError))
        #expect(got.count < data.count)
        #expect(Array(data[0..<got.count]) == got)
        #expect(host.lastIncident == "the serial line hung up")
    }
}
