import GenTCP
import GenTCPCore
import GenTCPPOSIX
import Testing

/// `gentcp udp`: the built binary against GenTCP UDP sockets on loopback.
@Suite(.enabled(if: GentcpBinary.url != nil, "gentcp is not built: run `swift build` first (or set GENTCP_BIN)"),
       .timeLimit(.minutes(3)))
struct UDPCLITests {
    /// An echo on 127.0.0.1 that answers every datagram, until `count` have come (then it closes).
    static func echo(count: Int) async throws -> (port: Int, done: Process) {
        let socket = try await UDPSocket.open(options: [.binary, .active(.passive), .localAddress(.loopbackV4), .buffer(65536)],
                                              driver: Backend.posixDriver)
        let port = try socket.port()
        let done = Process.spawn {
            defer { socket.close() }
            for _ in 0..<count {
                let d = try await socket.recv(timeout: 60_000)
                try await socket.send(d.payload.bytes, to: d.source)
            }
        }
        try socket.controllingProcess(done)
        return (port, done)
    }

    @Test("each stdin line is one datagram; each datagram comes back on its own line; exit 0 after the quiet wait")
    func lines() async throws {
        try await Process.run {
            let (port, done) = try await UDPCLITests.echo(count: 4)
            // -q: the quiet wait after the last datagram; generous, as the echo runs in this
            // (possibly very busy) test process.
            let out = try await CLITests.run(["udp", "-q", "20", "127.0.0.1", "\(port)"], stdin: bytes("one\ntwo\n\nlast"))
            #expect(out.status == 0, "\(out.stderr)")
            #expect(String(decoding: out.stdout, as: UTF8.self) == "one\ntwo\n\nlast\n")
            #expect(await done.waitForExit() == .normal)
        }
    }

    @Test("--size cuts stdin into binary datagrams; -v names the sender")
    func sizes() async throws {
        try await Process.run {
            let (port, _) = try await UDPCLITests.echo(count: 3)
            let input = CLITests.payload(2500, seed: 7)
            let out = try await CLITests.run(["udp", "-v", "--size", "1000", "-q", "20", "127.0.0.1", "\(port)"], stdin: input)
            #expect(out.status == 0, "\(out.stderr)")
            let prefix = bytes("127.0.0.1:\(port)\t")
            var expected: [UInt8] = []
            for start in stride(from: 0, to: 2500, by: 1000) {
                expected += prefix + input[start..<min(start + 1000, 2500)] + [10]
            }
            #expect(out.stdout == expected)
        }
    }

    @Test("a closed port is econnrefused and exit 1, never a quiet success")
    func refused() async throws {
        try await Process.run {
            let probe = try await UDPSocket.open(options: [.localAddress(.loopbackV4)], driver: Backend.posixDriver)
            let port = try probe.port()
            probe.close()
            // Several datagrams: Linux rate-limits ICMP errors, and one may draw no answer on a
            // busy run.
            let out = try await CLITests.run(["udp", "-q", "5", "127.0.0.1", "\(port)"],
                                             stdin: bytes(String(repeating: "anyone?\n", count: 10)))
            #expect(out.status == 1)
            #expect(out.errorLines.last?.hasPrefix("gentcp: econnrefused: connection refused") == true, "\(out.stderr)")
        }
    }

    @Test("bad arguments are one line and exit 64")
    func badArguments() async throws {
        for arguments in [["udp", "127.0.0.1", "0"], ["udp", "127.0.0.1", "x"], ["udp", "--size", "0", "127.0.0.1", "7"],
                          ["udp", "-q", "-1", "127.0.0.1", "7"], ["udp", "--driver", "at", "127.0.0.1", "7"],
                          ["udp", "--listen", "70000"], ["udp", "-6", "127.0.0.1", "7"]] {
            let out = try await CLITests.run(arguments)
            #expect(out.status == 64, "\(arguments): \(out.stderr)")
            #expect(out.errorLines.count == 1, "\(arguments): \(out.stderr)")
            #expect(out.errorLines.first?.hasPrefix("gentcp: badarg:") == true, "\(arguments): \(out.stderr)")
        }
    }

    @Test("--listen answers the first sender with stdin")
    func listen() async throws {
        try await Process.run {
            let probe = try await UDPSocket.open(options: [.localAddress(.loopbackV4)], driver: Backend.posixDriver)
            let port = try probe.port()
            probe.close()
            let client = try await UDPSocket.open(options: [.binary, .active(.passive), .localAddress(.loopbackV4)],
                                                  driver: Backend.posixDriver)
            let cli = Task { try await CLITests.run(["udp", "-q", "1", "--listen", "\(port)", "127.0.0.1"], stdin: bytes("answer\n")) }
            // Send until the binary is bound and answers (it may not be listening yet).
            var reply: Datagram?
            for _ in 0..<200 where reply == nil {
                try await client.send(bytes("hello"), to: SocketAddress(.loopbackV4, port: port))
                reply = try? await client.recv(timeout: 250)
            }
            #expect(reply?.payload == .binary(bytes("answer")))
            #expect(reply?.port == port)
            let out = try await cli.value
            #expect(out.status == 0, "\(out.stderr)")
            #expect(String(decoding: out.stdout, as: UTF8.self).hasPrefix("hello\n"))
            client.close()
        }
    }
}

extension UDPCLITests {
    @Test("udp --board sim-slip: UDP echo through GenTCP's stack on a pty; a closed port is econnrefused from the board's ICMP")
    func overSLIP() async throws {
        try await SimulateCLITests.withBoard("sim-slip") { board in
            let common = ["udp", "--board", "sim-slip", "--boards", SimulateCLITests.boards, "--serial", board.path, "-q", "15"]
            let echo = try await CLITests.run(common + ["board", "7"], stdin: bytes("over\nslip\n"))
            #expect(echo.status == 0, "\(echo.stderr)")
            #expect(String(decoding: echo.stdout, as: UTF8.self) == "over\nslip\n")
            let closed = try await CLITests.run(common + ["board", "9"], stdin: bytes("anyone?\n"))
            #expect(closed.status == 1)
            #expect(closed.errorLines.last?.hasPrefix("gentcp: econnrefused:") == true, "\(closed.stderr)")
            let tooBig = try await CLITests.run(common + ["--size", "2000", "board", "7"])
            #expect(tooBig.status == 64, "\(tooBig.stderr)")
        }
    }
}

extension UDPCLITests {
    @Test("udp --board sim-esp-at / sim-sim800 / sim-bg96: UDP echo through each simulated modem on a pty",
          arguments: ["sim-esp-at", "sim-sim800", "sim-bg96"])
    func throughModem(_ name: String) async throws {
        try await SimulateCLITests.withBoard(name) { board in
            try await Process.run {
                let (port, done) = try await UDPCLITests.echo(count: 2)
                let out = try await CLITests.run(
                    ["udp", "--board", name, "--boards", SimulateCLITests.boards, "--serial", board.path, "-q", "15", "-v",
                     "127.0.0.1", "\(port)"],
                    stdin: bytes("over\nthe modem\n"))
                #expect(out.status == 0, "\(out.stderr)")
                #expect(String(decoding: out.stdout, as: UTF8.self) == "127.0.0.1:\(port)\tover\n127.0.0.1:\(port)\tthe modem\n")
                _ = await done.waitForExit()
                let empty = try await CLITests.run(
                    ["udp", "--board", name, "--boards", SimulateCLITests.boards, "--serial", board.path, "-q", "1",
                     "127.0.0.1", "\(port)"],
                    stdin: bytes("\n"))
                #expect(empty.status == 1, "an empty datagram cannot go through a modem: \(empty.stderr)")
                #expect(empty.errorLines.last?.hasPrefix("gentcp: enotsup:") == true, "\(empty.stderr)")
            }
        }
    }
}
