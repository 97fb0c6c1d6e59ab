import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSim
import Synchronization
import Testing

/// Reads everything waiting at `link` (until wouldBlock or hang-up).
private func drain(_ link: any SerialLink) -> ([UInt8], LinkIO) {
    var all: [UInt8] = []
    while true {
        let (bytes, result) = link.read(upTo: 1024)
        guard case .bytes = result else { return (all, result) }
        all += bytes
    }
}

/// Writes all of `data` (the caller makes sure it fits).
private func writeAll(_ link: any SerialLink, _ data: [UInt8]) {
    #expect(link.write(data) == .bytes(data.count))
}

/// Byte time in virtual nanoseconds, rounded up, for `n` bytes at `baud`.
private func lineTime(_ n: Int, baud: Int) -> UInt64 {
    (UInt64(n) * 10 * 1_000_000_000 + UInt64(baud) - 1) / UInt64(baud)
}

@Suite("MemoryLink", .timeLimit(.minutes(1)))
struct MemoryLinkTests {
    @Test("a baud rate that is not positive throws badarg instead of trapping")
    func badBaudRate() throws {
        #expect(throws: SocketError(.badArgument)) {
            _ = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 0))
        }
        let (a, b) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 9600))
        a.close()
        b.close()
    }

    @Test("1 MiB at 115200 baud takes n/11520 s of virtual time, byte-exact, in a fraction of wall time")
    func pacingOneMebibyte() async throws {
        let runtime = SimRuntime(deadlockTimeout: nil)
        // On the simulator's executor, so the virtual clock cannot move while this code runs.
        try await withTaskExecutorPreference(runtime) {
            let (a, b) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 115_200), runtime: runtime)
            defer { a.close(); b.close() }
            let data = pattern(1 << 20, seed: 7)
            let lastRead = Atomic<UInt64>(0)
            let firstWrite = runtime.now
            let clock = ContinuousClock()
            let started = clock.now
            let pump = Pump(writer: a, reader: b, data: data, onRead: { _ in
                lastRead.store(runtime.now, ordering: .relaxed)
            })
            let (received, end) = await pump.run()
            #expect(pump.writeWaits > 0)
            let wall = clock.now - started
            #expect(end == nil)
            #expect(received == data)
            let virtual = lastRead.load(ordering: .relaxed) - firstWrite
            // 1048576 bytes × 10 bits / 115200 baud = 91.022 s: exactly the line time, no gaps.
            #expect(virtual == lineTime(data.count, baud: 115_200))
            #expect(virtual > 91_000_000_000 && virtual < 91_100_000_000)
            // Only catches a hang or a clock that runs in real time.
            #expect(wall < .seconds(30))
        }
    }

    @Test("a small write arrives exactly its line time later, not before", arguments: [
        (9600, 10), (115_200, 1), (115_200, 64), (57_600, 200), (1_000_000, 333),
    ])
    func pacingSmallWrite(baud: Int, count: Int) async throws {
        let runtime = SimRuntime(deadlockTimeout: nil)
        try await withTaskExecutorPreference(runtime) { try await smallWrite(runtime: runtime, baud: baud, count: count) }
    }

    /// Runs on the simulator's executor, so the clock cannot move while this code runs.
    private func smallWrite(runtime: SimRuntime, baud: Int, count: Int) async throws {
        let (a, b) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: baud), runtime: runtime)
        defer { a.close(); b.close() }
        let start = runtime.now
        writeAll(a, pattern(count))
        let due = lineTime(count, baud: baud)
        await runtime.sleep(nanoseconds: due - 1)
        #expect(b.bytesWaiting < count)
        await runtime.sleep(nanoseconds: 1)
        #expect(runtime.now - start == due)
        let (bytes, _) = drain(b)
        #expect(bytes == pattern(count))
    }

    @Test("a reader that does not read stops the writer: short write, then wouldBlock, bounded")
    func backpressure() async throws {
        let runtime = SimRuntime(deadlockTimeout: nil)
        try await withTaskExecutorPreference(runtime) { try await backpressure(runtime: runtime) }
    }

    private func backpressure(runtime: SimRuntime) async throws {
        let size = 256
        let (a, b) = try MemoryLink.pair(runtime: runtime, bufferSize: size)
        defer { a.close(); b.close() }
        let data = pattern(10_000, seed: 3)
        var accepted = 0
        var sawShort = false
        // Write, let the line run for a long while, write again, until nothing more is taken.
        for _ in 0..<10 {
            while true {
                let result = a.write(Array(data[accepted...]))
                guard case .bytes(let n) = result else {
                    #expect(result == .wouldBlock)
                    break
                }
                if n < data.count - accepted { sawShort = true }
                accepted += n
            }
            await runtime.sleep(nanoseconds: 1_000_000_000)
        }
        #expect(sawShort)
        // The transmit buffer and the receive buffer, each full: nothing unbounded in between.
        #expect(accepted == 2 * size)
        #expect(b.bytesWaiting == size)
        // Armed writes wait until the reader reads; then the line moves again.
        let probe = ReadinessProbe()
        a.setDelegate(probe.delegate())
        a.armWrite()
        await runtime.sleep(nanoseconds: 1_000_000_000)
        #expect(probe.count == 0)
        var received = drain(b).0
        await probe.wait()
        await runtime.sleep(nanoseconds: 1_000_000_000)
        received += drain(b).0
        #expect(received == Array(data[0..<accepted]))
    }

    @Test("closing one end is a hang-up at the other, after what had arrived")
    func hangUp() async throws {
        let runtime = SimRuntime(deadlockTimeout: nil)
        // On the simulator's executor, so the virtual clock cannot move while this code runs.
        try await withTaskExecutorPreference(runtime) {
            let (a, b) = try MemoryLink.pair(runtime: runtime)
            writeAll(a, [1, 2, 3])
            await runtime.sleep(nanoseconds: lineTime(3, baud: 115_200))
            let probe = ReadinessProbe()
            b.setDelegate(probe.delegate())
            #expect(b.read(upTo: 0).1 == .bytes(0))
            a.close()
            #expect(a.write([1]) == .failed(.closed))
            #expect(a.read(upTo: 1).1 == .failed(.closed))
            b.armRead()
            await probe.wait()
            let (bytes, end) = drain(b)
            #expect(bytes == [1, 2, 3])
            #expect(end == .hangUp)
            #expect(b.read(upTo: 4).1 == .hangUp)
            #expect(b.write([9]) == .hangUp)
            b.close()
            #expect(b.read(upTo: 4).1 == .failed(.closed))
        }
    }

    @Test("an armed reader is told of a hang-up that happens while it waits")
    func hangUpWhileArmed() async throws {
        let runtime = SimRuntime(deadlockTimeout: nil)
        // On the simulator's executor, so the virtual clock cannot move while this code runs.
        try await withTaskExecutorPreference(runtime) {
            let (a, b) = try MemoryLink.pair(runtime: runtime)
            defer { b.close() }
            let probe = ReadinessProbe()
            b.setDelegate(probe.delegate())
            b.armRead()
            b.armRead()
            await runtime.sleep(nanoseconds: 1_000_000)
            #expect(probe.count == 0)
            a.close()
            await probe.wait()
            #expect(b.read(upTo: 4).1 == .hangUp)
            await runtime.sleep(nanoseconds: 1_000_000)
            #expect(probe.count == 1)
        }
    }

    @Test("readiness is never delivered inside the link call")
    func notSynchronous() async throws {
        let runtime = SimRuntime(deadlockTimeout: nil)
        // On the simulator's executor, so the virtual clock cannot move while this code runs.
        try await withTaskExecutorPreference(runtime) {
            let (a, b) = try MemoryLink.pair(runtime: runtime)
            defer { a.close(); b.close() }
            let probe = ReadinessProbe()
            a.setDelegate(probe.delegate())
            a.armWrite()
            #expect(probe.count == 0)
            await probe.wait()
            #expect(probe.count == 1)
        }
    }

    /// Sends `frames` one by one on an idle line (each fully delivered before the next) and
    /// returns what arrived.
    private func transfer(frames: [[UInt8]], faults: LineFaults, seed: UInt64) async throws -> ([UInt8], LineFaultCounts) {
        let runtime = SimRuntime(deadlockTimeout: nil)
        return try await withTaskExecutorPreference(runtime) {
            try await transfer(runtime: runtime, frames: frames, faults: faults, seed: seed)
        }
    }

    private func transfer(runtime: SimRuntime, frames: [[UInt8]], faults: LineFaults, seed: UInt64) async throws -> ([UInt8], LineFaultCounts) {
        let (a, b) = try MemoryLink.pair(runtime: runtime, bufferSize: 1024, faults: faults, seed: seed)
        defer { a.close(); b.close() }
        var received: [UInt8] = []
        for frame in frames {
            writeAll(a, frame)
            await runtime.sleep(nanoseconds: lineTime(frame.count + faults.maxNoiseBytes, baud: 115_200) + 1_000_000)
            received += drain(b).0
        }
        return (received, b.receivedFaults)
    }

    private let frames = (0..<40).map { pattern(100, seed: UInt64($0) + 100) }

    @Test("dropped bytes: what arrives is the sent bytes minus some, counted, reproducible from the seed")
    func dropFaults() async throws {
        let sent = frames.flatMap { $0 }
        let faults = LineFaults(dropProbability: 0.05)
        let (received, counts) = try await transfer(frames: frames, faults: faults, seed: 42)
        #expect(counts.dropped > 0)
        #expect(received.count == sent.count - counts.dropped)
        #expect(isSubsequence(received, of: sent))
        let (again, _) = try await transfer(frames: frames, faults: faults, seed: 42)
        #expect(again == received)
        let (other, _) = try await transfer(frames: frames, faults: faults, seed: 43)
        #expect(other != received)
    }

    @Test("bit flips: same length, each changed byte differs in exactly one bit, reproducible")
    func flipFaults() async throws {
        let sent = frames.flatMap { $0 }
        let faults = LineFaults(bitFlipProbability: 0.02)
        let (received, counts) = try await transfer(frames: frames, faults: faults, seed: 42)
        #expect(received.count == sent.count)
        let changed = zip(sent, received).filter { $0 != $1 }
        #expect(changed.count == counts.flipped)
        #expect(changed.count > 0)
        #expect(changed.allSatisfy { ($0 ^ $1).nonzeroBitCount == 1 })
        let (again, _) = try await transfer(frames: frames, faults: faults, seed: 42)
        #expect(again == received)
        let (other, _) = try await transfer(frames: frames, faults: faults, seed: 7)
        #expect(other != received)
    }

    @Test("noise: extra bytes appear only between frames on an idle line, frames intact, reproducible")
    func noiseFaults() async throws {
        let faults = LineFaults(noiseProbability: 0.5, maxNoiseBytes: 5)
        let (received, counts) = try await transfer(frames: frames, faults: faults, seed: 42)
        #expect(counts.noiseBytes > 0)
        #expect(received.count == frames.count * 100 + counts.noiseBytes)
        // Each frame arrives whole and in order, with at most 5 noise bytes ahead of it.
        var at = 0
        for frame in frames {
            var found = false
            for skip in 0...5 where at + skip + frame.count <= received.count {
                if Array(received[(at + skip)..<(at + skip + frame.count)]) == frame {
                    at += skip + frame.count
                    found = true
                    break
                }
            }
            #expect(found)
            if !found { break }
        }
        #expect(at == received.count)
        let (again, _) = try await transfer(frames: frames, faults: faults, seed: 42)
        #expect(again == received)
        let (other, _) = try await transfer(frames: frames, faults: faults, seed: 1)
        #expect(other != received)
    }

    @Test("no faults configured: a perfect line")
    func perfectLine() async throws {
        let (received, counts) = try await transfer(frames: frames, faults: .none, seed: 42)
        #expect(received == frames.flatMap { $0 })
        #expect(counts.dropped == 0 && counts.flipped == 0 && counts.noiseBytes == 0)
        #expect(counts.delivered == received.count)
    }

    @Test("on the real runtime the pair works too (wall-clock pacing at 1 Mbaud)")
    func realRuntime() async throws {
        let (a, b) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 1_000_000))
        defer { a.close(); b.close() }
        let data = pattern(20_000, seed: 9)
        let (received, end) = await Pump(writer: b, reader: a, data: data).run()
        #expect(end == nil)
        #expect(received == data)
    }
}

private func isSubsequence(_ small: [UInt8], of big: [UInt8]) -> Bool {
    var i = 0
    for byte in big where i < small.count && small[i] == byte { i += 1 }
    return i == small.count
}
