import GenTCP
import GenTCPCore
import GenTCPModem
import GenTCPPOSIX
import GenTCPSim
import ModemSimulator
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Faults, backpressure, determinism")
struct FaultTests {
    @Test("A reset after N bytes drops the links, prints the banner, and the module works again",
          arguments: Kind.allCases)
    func resetAfterBytes(kind: Kind) async throws {
        let net = try SimNetwork(seed: 8)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem")
        let upload = trickyPayload(32 * 1024, seed: 1)
        try await net.run {
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(net, host: server))
            let record = PeerRecord()
            net.spawn {
                do {
                    let s = try await listener.accept()
                    while true { record.add(try await s.recv(0).bytes) }
                } catch {
                    record.finish("\(error)")
                }
            }
            try await withHarness(kind, faults: ModemFaults(resetAfterBytes: 12_000),
                                  driver: try SimDriver.sim(net, host: modemHost)) { h in
                try await h.boot()
                try await h.initialise()
                try await h.connect(link: 1, host: "server", port: 7000)
                await #expect(throws: (any Error).self) { try await h.send(upload, link: 1) }
                try await h.waitUntil("the reset", timeout: 10_000) { h.resets >= 2 }
                #expect(h.modem.statistics.resets == 1)
                #expect(!h.modem.isLinkInUse(1))
                #expect(h.closed.contains(1))
                try await h.waitUntil("the peer to see the link go", timeout: 10_000) { record.done }
                #expect(record.received.count < upload.count)
                #expect(record.received == Array(upload.prefix(record.received.count)))
                // Defaults are back: the driver runs its init again and carries on.
                try await h.initialise()
                try await h.connect(link: 2, host: "server", port: 7000)
            }
        }
    }

    @Test("Silent mode: commands time out; speaking again brings answers back")
    func silent() async throws {
        let net = try SimNetwork(seed: 9)
        let modemHost = try net.addHost("modem")
        try await net.run {
            try await withHarness(.espNew, driver: try SimDriver.sim(net, host: modemHost)) { h in
                try await h.boot()
                try await h.must(.probe)
                h.modem.setSilent(true)
                let c = try await h.exec(.probe, timeout: 10_000)
                #expect(c.outcome == .failure(.timeout, .timeout))
                h.modem.setSilent(false)
                try await h.must(.probe)
            }
        }
    }

    @Test("Passive receive backpressures the peer: the module's buffer stays bounded", arguments: Kind.allCases)
    func backpressure(kind: Kind) async throws {
        let net = try SimNetwork(seed: 10)
        let server = try net.addHost("server")
        let modemHost = try net.addHost("modem", receiveWindow: 4096)
        let download = trickyPayload(256 * 1024, seed: 5)
        try await net.run {
            let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                   driver: .sim(net, host: server))
            let record = PeerRecord()
            net.spawn {
                let s = try await listener.accept()
                var offset = 0
                while offset < download.count {
                    let n = min(1024, download.count - offset)
                    try await s.send(Array(download[offset..<offset + n]))
                    offset += n
                    record.addSent(n)
                }
                s.close()
                record.finish()
            }
            try await withHarness(kind, driver: try SimDriver.sim(net, host: modemHost)) { h in
                try await h.boot()
                try await h.initialise()
                h.autoRead = false
                try await h.connect(link: 1, host: "server", port: 7000)
                let start = h.now.milliseconds
                try await h.waitUntil("time to pass", timeout: 10_000) { h.now.milliseconds > start + 3_000 }
                let buffer = h.modem.configuration.linkBufferSize
                #expect(h.modem.bufferedBytes(link: 1) == buffer)
                #expect(!record.done)
                #expect(record.sent < buffer + 4096 + 64 * 1024)
                h.autoRead = true
                try await h.waitUntil("everything", timeout: 600_000) {
                    h.closed.contains(1) && (h.received[1]?.count ?? 0) >= download.count
                }
                #expect(sha(h.received[1] ?? []) == sha(download))
            }
        }
    }

    @Test("The same seed gives the same output bytes, fragments and times on the sim driver", arguments: Kind.allCases)
    func determinism(kind: Kind) async throws {
        func once(seed: UInt64) async throws -> [(UInt64, [UInt8])] {
            let faults = ModemFaults(maxFragmentLength: 13, maxFragmentDelay: .milliseconds(1), noiseProbability: 0.3,
                                     baudRate: 115_200)
            let net = try SimNetwork(seed: 12)
            let server = try net.addHost("server")
            let modemHost = try net.addHost("modem")
            let upload = trickyPayload(4096, seed: 2)
            let download = trickyPayload(4096, seed: 3)
            return try await net.run {
                let listener = try ListenSocket.listen(port: 7000, options: [.binary, .active(.passive)],
                                                       driver: .sim(net, host: server))
                let record = PeerRecord()
                net.spawn { await exchangePeer(listener, expect: upload.count, reply: download, record: record) }
                return try await withHarness(kind, seed: seed, faults: faults, driver: try SimDriver.sim(net, host: modemHost)) { h in
                    try await transfer(h, host: "server", port: 7000, record: record, upload: upload, download: download)
                    return h.wire.map { WireFragment(time: $0.0, bytes: $0.1) }
                }
            }.map { ($0.time, $0.bytes) }
        }
        let a = try await once(seed: 42)
        let b = try await once(seed: 42)
        let c = try await once(seed: 43)
        #expect(a.count == b.count)
        #expect(a.map(\.0) == b.map(\.0))
        #expect(a.map(\.1) == b.map(\.1))
        #expect(a.map(\.1) != c.map(\.1))
    }

    #if canImport(Glibc)
    @Test("Byte pipes: the bridge answers on a socket pair")
    func pipes() async throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let bridge = ModemPipeBridge(.espAT(), driver: POSIXDriverBox.driver, readFD: fds[1], writeFD: fds[1])
        func readSome() -> String {
            var buffer = [UInt8](repeating: 0, count: 256)
            var poll = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            var out = ""
            while Glibc.poll(&poll, 1, 500) > 0 {
                let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
                if n <= 0 { break }
                out += String(decoding: buffer[0..<n], as: UTF8.self)
                if out.hasSuffix("OK\r\n") || out.hasSuffix("ready\r\n") { break }
            }
            return out
        }
        #expect(readSome() == "\r\nready\r\n")
        let command = Array("AT\r\n".utf8)
        _ = command.withUnsafeBytes { write(fds[0], $0.baseAddress, $0.count) }
        #expect(readSome() == "AT\r\n\r\nOK\r\n")
        bridge.stop()
        close(fds[0])
        close(fds[1])
    }
    #endif
}

struct WireFragment: Sendable {
    let time: UInt64
    let bytes: [UInt8]
}

enum POSIXDriverBox { static var driver: any Driver { POSIXDriver.posix } }
