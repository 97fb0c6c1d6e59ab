import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSim
import GenTCPWire
import ModemSimulator
import Testing

/// Output cut into 1...7-byte fragments, each delayed up to 200 µs, with URC noise.
private let noisy = ModemFaults(maxFragmentLength: 7, maxFragmentDelay: .microseconds(200), noiseProbability: 0.1)
/// Fragments and noise without delays, so the line (not the simulator's delays) sets the pace.
private let fragmented = ModemFaults(maxFragmentLength: 7, noiseProbability: 0.1)

/// Runs `body` on a fresh bench inside a simulated network.
private func onBench<T: Sendable>(
    baud: Int = 115_200, simulator: ModemSimulatorConfiguration = .espAT(firmware: "3.3.0.0"),
    driver: ATConfiguration = ATConfiguration(dialect: .espAT), seed: UInt64 = 3,
    _ body: @escaping @Sendable (ATBench) async throws -> T
) async throws -> T {
    let net = SimNetwork(seed: seed)
    let server = net.addHost("server")
    let modemHost = net.addHost("modem")
    return try await net.run {
        let bench = ATBench(net: net, server: server, modemHost: modemHost, baud: baud, simulator: simulator, driver: driver)
        defer { bench.close() }
        bench.at.start()
        try await bench.waitReady()
        return try await body(bench)
    }
}

@Suite("at driver on the modem simulator", .timeLimit(.minutes(5)))
struct ATDriverTests {
    @Test("echo through ESP-AT by host name", arguments: ["2.2.0.0", "3.3.0.0"])
    func echo(firmware: String) async throws {
        try await onBench(simulator: .espAT(firmware: firmware, faults: noisy)) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            b.net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(30_000))
                while let p = try? await s.recv(0, timeout: .milliseconds(30_000)) { try await s.send(p.bytes) }
                s.close()
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            let message = Array("hello\r\nOK\r\n+IPD,0,3:>".utf8)
            try await s.send(message)
            var got: [UInt8] = []
            while got.count < message.count { got += try await s.recv(0, timeout: .milliseconds(10_000)).bytes }
            #expect(got == message)
            #expect(try s.peername().port == 7000)
            s.close()
            listener.close()
        }
    }

    @Test("1 MiB each way byte-exact over ESP-AT with fragmentation and URC noise; goodput",
          arguments: [115_200, 921_600])
    func mebibyte(baud: Int) async throws {
        let size = 1 << 20
        let upload = trickyBytes(size, seed: 1)
        let download = trickyBytes(size, seed: 2)
        try await onBench(baud: baud, simulator: .espAT(firmware: "3.3.0.0", faults: fragmented)) { b in
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(b.net, host: b.server))
            let log = PeerLog()
            let runtime = b.net.runtime
            b.net.spawn {
                await uploadThenDownloadPeer(listener, runtime: runtime, expect: size, reply: download, log: log)
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(30_000), driver: b.at)
            let t0 = runtime.now
            try await s.send(upload)
            try await b.waitUntil("upload", .seconds(600)) { log.done }
            let t1 = runtime.now
            #expect(log.error == nil)
            #expect(log.received == size)
            #expect(log.hash == sha(upload))
            let down = await drainSocket(s, runtime: runtime)
            #expect(down.error == .closed)
            #expect(down.count == size)
            #expect(down.hash == sha(download))
            let line = Double(baud) / 10
            let up = Double(size) / (Double(t1 - t0) / 1e9) / line
            let dn = Double(size) / (Double(down.last - down.first) / 1e9) / line
            print("goodput esp-at \(baud) baud: upload \(up), download \(dn) of the line's \(Int(line)) B/s")
            #expect(up > 0.85)
            #expect(dn > 0.85)
            let stats = b.at.statistics
            #expect(stats.overflowBytes == 0)
            #expect(stats.framingErrors == 0)
            #expect(stats.largestReceiveBuffer <= SocketOptions.defaultBuffer)
            s.close()
            listener.close()
        }
    }
}
