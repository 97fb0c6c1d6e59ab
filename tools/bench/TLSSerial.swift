import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import GenTCPSim
import GenTCPTLS
import GenTCPWire

/// TLS over the slip driver on a simulated line (virtual clock, deterministic), against plain TCP
/// on an identical line in the same run: goodput as a fraction of the line's TCP payload limit
/// (so TLS's record headers and tags count against TLS), and the line time of the connect (TCP
/// handshake, plus TLS's for TLS). Upload: the host's first send to the board's last byte;
/// download: the board's first send to the host's last byte.
enum TLSSerial {
    struct Outcome {
        var connectSeconds: Double
        var exchange: SerialGoodput.Exchange
    }

    /// `size` bytes up, checked by SHA-256 at the board, then `size` bytes down, between a host
    /// slip driver and a board slip driver on one line; `tls` runs both ends over TLS (the host is
    /// the client).
    static func run(baud: Int, mtu: Int, size: Int, tls: Bool) async throws -> Outcome {
        let net = try SimNetwork(seed: 1)
        return try await net.run {
            let (hostEnd, boardEnd) = try MemoryLink.pair(
                configuration: SerialConfiguration(baudRate: baud), runtime: net.runtime, bufferSize: 1024,
                faults: LineFaults(dropProbability: 0), seed: 7)
            let host = try SLIPDriver(
                link: hostEnd,
                configuration: SLIPConfiguration(local: IPAddress(10, 10, 0, 1), peer: IPAddress(10, 10, 0, 2), mtu: mtu, seed: 1),
                runtime: net.runtime)
            let board = try SLIPDriver(
                link: boardEnd,
                configuration: SLIPConfiguration(local: IPAddress(10, 10, 0, 2), peer: IPAddress(10, 10, 0, 1), mtu: mtu, seed: 2),
                runtime: net.runtime)
            defer { host.close(); board.close() }

            let upload = SerialGoodput.pattern(size, seed: 1)
            let download = SerialGoodput.pattern(size, seed: 2)
            let listener = try ListenSocket.listen(port: 9, options: [.binary, .active(.passive)], driver: board)
            defer { listener.close() }
            let done = SerialGoodput.Box()
            net.spawn {
                let s = tls ? try await listener.accept(tls: TLSBench.serverContext) : try await listener.accept()
                var h = SHA256()
                var got = 0
                while got < size {
                    let chunk = try await s.recv(0)
                    h.update(chunk.bytes)
                    got += chunk.count
                }
                done.set(net.now, h.finalize() == SHA256.hash(upload))
                try await s.send(download)
                s.close()
            }
            let options: [Option] = [.binary, .active(.passive)]
            let connectStart = net.now
            let s = tls
                ? try await Socket.connect(.address(IPAddress(10, 10, 0, 2)), port: 9, options: options,
                                           tls: TLSBench.clientContext, driver: host)
                : try await Socket.connect(.address(IPAddress(10, 10, 0, 2)), port: 9, options: options, driver: host)
            defer { s.close() }
            let connectSeconds = Double(net.now - connectStart) / 1e9
            let t0 = net.now
            try await s.send(upload)
            while done.value == nil { await net.sleep(for: .milliseconds(10)) }
            let (t1, uploadIntact) = done.value!
            // Download time runs from the board's first send (right after its last upload byte)
            // to the host's last byte: from the host's first byte instead would leave TLS's first
            // record (delivered only once whole) out of the time.
            var h = SHA256()
            var got = 0
            while let chunk = try? await s.recv(0) {
                h.update(chunk.bytes)
                got += chunk.count
            }
            let t2 = net.now
            return Outcome(
                connectSeconds: connectSeconds,
                exchange: SerialGoodput.Exchange(
                    uploadSeconds: Double(t1 - t0) / 1e9, downloadSeconds: Double(t2 - t1) / 1e9,
                    uploadIntact: uploadIntact, downloadIntact: got == size && h.finalize() == SHA256.hash(download)))
        }
    }

    /// Prints plain and TLS goodput on slip at 115200 baud (MTU 1006), and the connect times.
    static func report(size: Int) async throws {
        let baud = 115_200, mtu = 1006
        let limit = Double(baud) / 10 * Double(mtu - 40) / (Double(mtu) + 2 + Double(mtu) * 2 / 256)
        let plain = try await run(baud: baud, mtu: mtu, size: size, tls: false)
        let tls = try await run(baud: baud, mtu: mtu, size: size, tls: true)
        say("TLS over slip on a simulated line (virtual clock, deterministic): \(formatSize(size)) each way at \(baud) baud,")
        say("MTU \(mtu), goodput as a fraction of the line's TCP payload limit (\(format(limit, 0)) B/s), plain TCP and TLS")
        say("(TLS 1.3, 16 KiB records, the host the client) on identical lines in the same run.")
        say()
        say("\(pad("connection", 12)) \(pad("upload", 8)) \(pad("download", 9)) \(pad("sha-256", 9)) \(pad("connect (line time)", 20))")
        for (name, o) in [("plain TCP", plain), ("TLS", tls)] {
            let up = Double(size) / o.exchange.uploadSeconds / limit
            let down = Double(size) / o.exchange.downloadSeconds / limit
            let intact = o.exchange.uploadIntact && o.exchange.downloadIntact
            say("\(pad(name, 12)) \(pad(format(up, 3), 8)) \(pad(format(down, 3), 9)) \(pad(intact ? "match" : "MISMATCH", 9)) \(format(o.connectSeconds * 1000, 0)) ms")
        }
        let upRatio = plain.exchange.uploadSeconds / tls.exchange.uploadSeconds
        let downRatio = plain.exchange.downloadSeconds / tls.exchange.downloadSeconds
        say("TLS / plain goodput: upload \(format(upRatio, 3)), download \(format(downRatio, 3)); the TLS handshake adds")
        say("\(format((tls.connectSeconds - plain.connectSeconds) * 1000, 0)) ms of line time to the connect.")
    }
}
