import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSim
import GenTCPWire
import Testing

/// The MSS we advertise is exactly MTU − 40: a board that honours it (and may have a larger MTU
/// itself, as a Linux `slattach` at 296 does) never sends a frame our decoder must drop.
@Suite("slip driver at small MTUs", .timeLimit(.minutes(2)))
struct SLIPMTUTests {
    @Test("16 KiB down and up byte-exact at MTU 68 and 96, the board at the same MTU or at 296",
          arguments: [68, 96], [nil, 296] as [Int?])
    func smallMTU(mtu: Int, boardMTU: Int?) async throws {
        let line = try SLIPLine(mtu: mtu, boardMTU: boardMTU)
        let data = pattern(16 << 10, seed: 4)
        let source = try line.startSource(data: data)
        let sink = try line.startDigestSink()
        try await line.run {
            let options: [Option] = [.binary, .active(.passive), .buffer(4096)]
            let d = try await Socket.connect("board", port: 19, options: options, timeout: 5000, driver: line.host)
            var got: [UInt8] = []
            while true {
                do throws(SocketError) {
                    got += try await d.recv(0, timeout: 20_000).bytes
                } catch {
                    #expect(error.reason == .closed, "the download ends with the board's FIN, not \(error)")
                    break
                }
            }
            d.close()
            #expect(got.count == data.count)
            #expect(got == data)

            let u = try await Socket.connect("board", port: 9, options: options, timeout: 5000, driver: line.host)
            try await sendAll(u, data, chunk: 1024)
            try u.shutdown(.write)
            let digest = try await u.recv(32, timeout: 20_000).bytes
            #expect(digest == SHA256.hash(data))
            u.close()
            source.close()
            sink.close()
        }
        // Nothing the board sent was too long for our line.
        #expect(line.host.statistics.oversizedFrames == 0)
        #expect(line.host.statistics.stack.tooBig == 0)
        #expect(line.board.statistics.stack.tooBig == 0)
    }
}
