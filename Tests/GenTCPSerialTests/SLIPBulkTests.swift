import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import GenTCPSim
import GenTCPStack
import GenTCPWire
import Synchronization
import Testing

/// One-way and echo transfers of 1 MiB through the slip driver on a paced line, byte-exact by
/// SHA-256, with goodput on the virtual clock.
@Suite("slip driver bulk transfers", .timeLimit(.minutes(10)))
struct SLIPBulkTests {
    static let size = 1 << 20

    struct Figures: Sendable {
        var upload = 0.0
        var download = 0.0
        var echo = 0.0
    }

    /// Uploads to the board's digest sink, downloads from its source, then echoes; returns the
    /// payload rates (bytes per virtual second).
    static func transfer(_ line: SLIPLine, size: Int, echo: Bool = true) async throws -> Figures {
        let up = pattern(size, seed: 11)
        let down = pattern(size, seed: 12)
        _ = try line.startDigestSink()
        _ = try line.startSource(data: down)
        _ = try line.startEcho()
        return try await line.run {
            var figures = Figures()
            let options: [Option] = [.binary, .active(.passive), .buffer(16384)]
            // Upload.
            let u = try await Socket.connect("board", port: 9, options: options, driver: line.host)
            var start = line.runtime.now
            try await sendAll(u, up)
            try u.shutdown(.write)
            let digest = try await u.recv(32, timeout: 600_000).bytes
            figures.upload = Double(size) / (Double(line.runtime.now - start) / 1e9)
            #expect(digest == SHA256.hash(up), "upload digest")
            u.close()
            // Download.
            let d = try await Socket.connect("board", port: 19, options: options, driver: line.host)
            start = line.runtime.now
            let (count, got) = try await digestAll(d)
            figures.download = Double(count) / (Double(line.runtime.now - start) / 1e9)
            #expect(count == size)
            #expect(got == SHA256.hash(down), "download digest")
            d.close()
            guard echo else { return figures }
            // Echo, full duplex: a helper process writes while this one reads.
            let e = try await Socket.connect("board", port: 7, options: options, driver: line.host)
            start = line.runtime.now
            Process.spawn(runtime: line.runtime) {
                try await sendAll(e, up)
            }
            var hash = SHA256()
            var received = 0
            while received < size {
                let bytes = try await e.recv(0, timeout: 600_000).bytes
                received += bytes.count
                hash.update(bytes)
            }
            figures.echo = Double(received) / (Double(line.runtime.now - start) / 1e9)
            #expect(received == size)
            #expect(hash.finalize() == SHA256.hash(up), "echo digest")
            e.close()
            return figures
        }
    }

    @Test("1 MiB up, down and echoed, byte-exact; goodput near the line's limit", arguments: [115_200, 921_600])
    func clean(baud: Int) async throws {
        let line = try SLIPLine(baud: baud)
        let f = try await SLIPBulkTests.transfer(line, size: SLIPBulkTests.size)
        let limit = slipLimit(baud: baud, mtu: 1006)
        let stats = line.host.statistics
        print("slip \(baud) baud MTU 1006: upload \(Int(f.upload)) B/s (\(f.upload / limit)), download "
            + "\(Int(f.download)) B/s (\(f.download / limit)), echo \(Int(f.echo)) B/s per direction "
            + "(\(f.echo / limit)); limit \(Int(limit)) B/s; rto \(stats.stack.timeoutRetransmissions) "
            + "fast \(stats.stack.fastRetransmissions); board rto \(line.board.statistics.stack.timeoutRetransmissions); "
            + "end at \(line.runtime.now) ns")
        #expect(f.upload / limit > 0.95)
        #expect(f.download / limit > 0.95)
        #expect(f.echo / limit > 0.8)
        #expect(stats.stack.timeoutRetransmissions == 0)
        #expect(line.board.statistics.stack.timeoutRetransmissions == 0)
    }

    /// Bytes dropped on the line (each one breaks its frame: a short datagram, a bad checksum, or
    /// two frames run together) must cost time, never data. Bit flips are left out on purpose:
    /// two flips at the same bit of two 16-bit words, in opposite directions, cancel in the
    /// one's-complement TCP checksum, and a noisy line does produce them (a 0.05 % flip rate
    /// delivered a corrupted segment within 1 MiB in this harness). SLIP has no frame check of its
    /// own, so no SLIP peer can promise byte-exact data on a line that flips bits.
    ///
    /// At 0.1 % byte loss a 296-byte frame is lost one time in four, a 1006-byte frame nearly
    /// two times in three; at 1 % a 96-byte frame (the MTU a user picks for such a line) is lost
    /// two times in three. The last case runs once more with standard congestion control (the
    /// link not marked dedicated), which halves the window on every loss.
    @Test("a lossy line (bytes dropped) stays byte-exact and does not hang",
          arguments: [(0.001, 296, 1 << 20, true), (0.001, 1006, 256 << 10, true), (0.01, 96, 1 << 20, true),
                      (0.001, 296, 256 << 10, false)])
    func lossy(rate: Double, mtu: Int, size: Int, dedicated: Bool) async throws {
        let faults = LineFaults(dropProbability: rate)
        var tcp = SLIPConfiguration.defaultTCP
        tcp.maximumRetransmissions = 60
        tcp.userTimeout = 600_000
        tcp.synRetries = 40
        tcp.connectTimeout = 600_000
        let line = try SLIPLine(baud: 921_600, mtu: mtu, faults: faults, seed: 7, tcp: tcp, dedicatedLink: dedicated)
        let f = try await SLIPBulkTests.transfer(line, size: size, echo: false)
        let limit = slipLimit(baud: 921_600, mtu: mtu)
        let host = line.host.statistics, board = line.board.statistics
        print("slip lossy \(rate) MTU \(mtu)\(dedicated ? "" : " standard"): upload \(Int(f.upload)) B/s (\(f.upload / limit)), "
            + "download \(Int(f.download)) B/s (\(f.download / limit)); "
            + "malformed \(host.stack.malformed + board.stack.malformed) "
            + "bad checksums \(host.stack.badChecksum + board.stack.badChecksum) "
            + "rto \(host.stack.timeoutRetransmissions + board.stack.timeoutRetransmissions) "
            + "fast \(host.stack.fastRetransmissions + board.stack.fastRetransmissions)")
        #expect(host.stack.badChecksum + board.stack.badChecksum + host.stack.malformed + board.stack.malformed > 0)
        if rate == 0.001, mtu == 296, dedicated {
            // The issue's goal for this line, on the virtual clock (the same seed gives the same
            // figure; Linux reaches 0.18 here).
            #expect(f.upload / limit >= 0.25)
            #expect(f.download / limit >= 0.25)
        }
    }
}
