import Foundation
import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import GenTCPSim
import GenTCPWire
import Synchronization
import Testing

/// Threads that hash without pause and pool tasks that hash and yield, until ``stop()``: a busy
/// machine inside this process (GenTCPSimTests has the same load for the network simulator).
private final class Hogs: Sendable {
    private let stopping = Atomic<Bool>(false)
    private let rounds = Atomic<UInt64>(0)
    private let threadsLeft: Mutex<(count: Int, waiter: CheckedContinuation<Void, Never>?)>
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(threads: Int = 2, tasks taskCount: Int = 4) {
        threadsLeft = Mutex((threads, nil))
        for _ in 0..<threads {
            Thread { [self] in
                while !stopping.load(ordering: .relaxed) { spin() }
                let waiter = threadsLeft.withLock { left -> CheckedContinuation<Void, Never>? in
                    left.count -= 1
                    return left.count == 0 ? left.waiter : nil
                }
                waiter?.resume()
            }.start()
        }
        let started = (0..<taskCount).map { _ in
            Task.detached { [self] in
                while !stopping.load(ordering: .relaxed) {
                    spin()
                    await Task.yield()
                }
            }
        }
        tasks.withLock { $0 = started }
    }

    /// Hashing rounds done (proof that the load ran).
    var work: UInt64 { rounds.load(ordering: .relaxed) }

    /// Ends every thread and task; returns once all have ended.
    func stop() async {
        stopping.store(true, ordering: .relaxed)
        for task in tasks.withLock({ $0 }) { await task.value }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = threadsLeft.withLock { left -> Bool in
                if left.count == 0 { return true }
                left.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func spin() {
        var digest = SHA256()
        digest.update([UInt8](repeating: UInt8(truncatingIfNeeded: rounds.load(ordering: .relaxed)), count: 16 << 10))
        if digest.finalize()[0] == 0 && rounds.load(ordering: .relaxed) == .max { print("") }
        rounds.add(1, ordering: .relaxed)
    }
}

@Suite("slip determinism", .timeLimit(.minutes(5)))
struct SLIPDeterminismTests {
    /// A seeded slip line that drops bytes, with an upload and a download at once, and everything
    /// it leaves behind as bytes: the pcap the host driver wrote (virtual timestamps), both
    /// drivers' counters, the line's fault counts and the clock.
    static func lossyLine(seed: UInt64) async throws -> (capture: [UInt8], summary: String, dropped: Int) {
        let path = "/tmp/gentcp-slip-determinism-\(getpid())-\(UInt64.random(in: 0...UInt64.max)).pcap"
        defer { unlink(path) }
        var tcp = SLIPConfiguration.defaultTCP
        tcp.maximumRetransmissions = 60
        tcp.userTimeout = 600_000
        let line = try SLIPLine(baud: 921_600, mtu: 296, faults: LineFaults(dropProbability: 0.0005), seed: seed,
                                tcp: tcp, capturePath: path)
        let up = pattern(96 << 10, seed: 21)
        let down = pattern(96 << 10, seed: 22)
        _ = try line.startDigestSink()
        _ = try line.startSource(data: down)
        let results = try await line.run { () -> String in
            let options: [Option] = [.binary, .active(.passive), .buffer(8192)]
            let u = try await Socket.connect("board", port: 9, options: options, driver: line.host)
            let d = try await Socket.connect("board", port: 19, options: options, driver: line.host)
            Process.spawn(runtime: line.runtime) {
                try await sendAll(u, up, chunk: 3000)
                try u.shutdown(.write)
            }
            let (count, digest) = try await digestAll(d)
            let sinkDigest = try await u.recv(32, timeout: 600_000).bytes
            return "download \(count) intact \(digest == SHA256.hash(down)); upload intact \(sinkDigest == SHA256.hash(up)) at \(line.runtime.now)"
        }
        let capture = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let summary = """
            \(results)
            host \(line.host.statistics)
            board \(line.board.statistics)
            toward host \(line.hostLink.receivedFaults)
            toward board \(line.boardLink.receivedFaults)
            now \(line.runtime.now) timers \(line.runtime.pendingTimers)
            """
        return (capture, summary, line.hostLink.receivedFaults.dropped + line.boardLink.receivedFaults.dropped)
    }

    @Test("a seeded lossy slip line replays byte for byte beside CPU-heavy work in the same process")
    func busyMachine() async throws {
        let alone = try await SLIPDeterminismTests.lossyLine(seed: 31)
        #expect(alone.summary.contains("download 98304 intact true; upload intact true"))
        #expect(alone.capture.count > 96 << 10)
        #expect(alone.dropped > 0)
        let hogs = Hogs()
        let busy: (capture: [UInt8], summary: String, dropped: Int)
        do {
            busy = try await SLIPDeterminismTests.lossyLine(seed: 31)
            await hogs.stop()
        } catch {
            await hogs.stop()
            throw error
        }
        #expect(hogs.work > 0)
        #expect(busy.summary == alone.summary)
        #expect(busy.capture == alone.capture, "the pcaps differ: \(SLIPDeterminismTests.firstDifference(busy.capture, alone.capture))")
    }

    /// Where two pcap files part: the record number and both records' timestamps and lengths.
    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
        var offset = Pcap.fileHeaderLength, record = 0
        func header(_ p: [UInt8], _ at: Int) -> (Int, UInt32)? {
            guard at + 16 <= p.count else { return nil }
            func u32(_ i: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(p[at + i + $1]) << (8 * $1) } }
            return (Int(u32(0)) * 1_000_000 + Int(u32(4)), u32(8))
        }
        while let ha = header(a, offset), let hb = header(b, offset) {
            let end = offset + 16 + Int(ha.1)
            if ha != hb || end > a.count || end > b.count || a[offset..<end] != b[offset..<end] {
                return "record \(record): \(ha.0) µs \(ha.1) bytes vs \(hb.0) µs \(hb.1) bytes"
            }
            offset = end
            record += 1
        }
        return "after record \(record) (\(a.count) and \(b.count) bytes)"
    }
}
