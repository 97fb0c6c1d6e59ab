import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import ModemSimulator
import Synchronization
import Testing

/// `getstat`'s `send_pend` on the at driver counts the bytes the driver accepted and the module
/// has not acknowledged yet (`Connection.unsentByteCount`), so a program (gentcp's `-q`) can
/// wait until everything it sent has left the host.
@Suite("at driver send_pend", .timeLimit(.minutes(2)))
struct ATSendPendTests {
    @Test("after a send, send_pend counts the bytes not yet acknowledged by the module, then falls to 0 once all of them arrived")
    func sendPendCountsUnacknowledgedBytes() async throws {
        let net = try SimNetwork(seed: 11)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem")
        let data = (0..<6000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        try await net.run {
            // 9600 baud: 6000 bytes take over 6 s of (virtual) line time.
            let bench = try ATBench(net: net, server: server, modemHost: modemHost, baud: 9600,
                                simulator: .espAT(firmware: "3.3.0.0"),
                                driver: ATConfiguration(dialect: .espAT, sendBufferSize: 8192))
            defer { bench.close() }
            bench.at.start()
            try await bench.waitReady()
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(net, host: server))
            let got = Mutex(0)
            net.spawn {
                let s = try await listener.accept(timeout: .milliseconds(60_000))
                while let p = try? await s.recv(0, timeout: .milliseconds(60_000)) {
                    got.withLock { $0 += p.count }
                }
            }
            let s = try await Socket.connect("server", port: 7000, options: [.binary, .active(.passive)],
                                             timeout: .milliseconds(60_000), driver: bench.at)
            #expect(try s.getstat().sendPend == 0)
            try await s.send(data)
            // The send returned: the driver holds the bytes; the line has not carried them yet.
            let pending = try s.getstat().sendPend
            #expect(pending > 0 && pending <= UInt64(data.count), "send_pend \(pending)")
            try await bench.waitUntil("send_pend 0", .seconds(60)) { ((try? s.getstat().sendPend) ?? 1) == 0 }
            // Acknowledged by the module means sent on to the peer.
            try await bench.waitUntil("the server got every byte", .seconds(10)) { got.withLock { $0 } == data.count }
            s.close()
            listener.close()
        }
    }
}
