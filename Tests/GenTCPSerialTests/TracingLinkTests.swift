import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSim
import Synchronization
import Testing

/// Collects a tracing link's events (from any thread).
private final class EventLog: Sendable {
    private let events = Mutex<[SerialTraceEvent]>([])
    func add(_ event: SerialTraceEvent) { events.withLock { $0.append(event) } }
    var all: [SerialTraceEvent] { events.withLock { $0 } }

    /// The bytes of every chunk in `direction`, joined.
    func bytes(_ direction: SerialTraceEvent.Direction) -> [UInt8] {
        all.filter { $0.direction == direction }.flatMap { event -> [UInt8] in
            if case .bytes(let b) = event.what { return b }
            return []
        }
    }
}

@Suite("TracingLink", .timeLimit(.minutes(1)))
struct TracingLinkTests {
    @Test("both directions pass unchanged through the wrapper, paced as without it, and every chunk is reported with its direction and virtual time")
    func forwardsAndReports() async throws {
        let runtime = SimRuntime(deadlockTimeout: nil)
        try await withTaskExecutorPreference(runtime) {
            let (a, b) = try MemoryLink.pair(configuration: SerialConfiguration(baudRate: 115_200), runtime: runtime)
            let log = EventLog()
            let traced = TracingLink(wrapping: a, runtime: runtime) { log.add($0) }
            defer { traced.close(); b.close() }
            #expect(traced.configuration == a.configuration)
            #expect(traced.description == a.description)

            // Host to board: written through the wrapper, read at the far end.
            let out = pattern(10_000, seed: 3)
            let start = runtime.now
            let (got, end) = await Pump(writer: traced, reader: b, data: out).run()
            #expect(end == nil)
            #expect(got == out)
            #expect(log.bytes(.written) == out)
            #expect(log.bytes(.read).isEmpty)
            #expect(log.all.first?.time == start)

            // Board to host: written at the far end, read through the wrapper.
            let back = pattern(20_000, seed: 4)
            let lastRead = Atomic<UInt64>(0)
            let backStart = runtime.now
            let (gotBack, endBack) = await Pump(writer: b, reader: traced, data: back, onRead: { _ in
                lastRead.store(runtime.now, ordering: .relaxed)
            }).run()
            #expect(endBack == nil)
            #expect(gotBack == back)
            #expect(log.bytes(.read) == back)
            #expect(log.bytes(.written) == out)
            let reads = log.all.filter { $0.direction == .read }
            #expect(reads.count > 1)
            // Stamped with the virtual clock, in order, and the line's pacing is untouched: the
            // last chunk arrives exactly 20000 byte times after the first write.
            #expect(reads.map(\.time) == reads.map(\.time).sorted())
            #expect(reads.last?.time == lastRead.load(ordering: .relaxed))
            #expect(lastRead.load(ordering: .relaxed) - backStart == (20_000 * 10 * 1_000_000_000 + 115_199) / 115_200)
        }
    }

    @Test("the delegate is handed the tracing link, so its reads are traced too")
    func delegateGetsTheWrapper() async throws {
        let runtime = SimRuntime(deadlockTimeout: nil)
        try await withTaskExecutorPreference(runtime) {
            let (a, b) = try MemoryLink.pair(runtime: runtime)
            let log = EventLog()
            let traced = TracingLink(wrapping: a, runtime: runtime) { log.add($0) }
            defer { traced.close(); b.close() }
            let handed = Mutex<(any SerialLink)?>(nil)
            let probe = ReadinessProbe()
            let inner = probe.delegate()
            traced.setDelegate(ClosureDelegate(onReadable: { link in
                handed.withLock { $0 = link }
                inner.linkIsReadable(link)
            }))
            #expect(b.write(Array("OK\r\n".utf8)) == .bytes(4))
            traced.armRead()
            await probe.wait()
            let link = handed.withLock { $0 }
            #expect(link === traced)
            let (bytes, result) = link!.read(upTo: 64)
            #expect(result == .bytes(4) && bytes == Array("OK\r\n".utf8))
            #expect(log.all == [SerialTraceEvent(time: runtime.now, direction: .read, what: .bytes(Array("OK\r\n".utf8)))])
        }
    }

    @Test("a hang-up is reported once per direction; wouldBlock and empty transfers are not reported")
    func hangUpOnce() async throws {
        let runtime = SimRuntime(deadlockTimeout: nil)
        try await withTaskExecutorPreference(runtime) {
            let (a, b) = try MemoryLink.pair(runtime: runtime)
            let log = EventLog()
            let traced = TracingLink(wrapping: a, runtime: runtime) { log.add($0) }
            defer { traced.close() }
            #expect(traced.read(upTo: 16).1 == .wouldBlock)
            #expect(traced.write([]) == .bytes(0))
            #expect(log.all.isEmpty)
            b.close()
            #expect(traced.read(upTo: 16).1 == .hangUp)
            #expect(traced.read(upTo: 16).1 == .hangUp)
            #expect(traced.write([1, 2, 3]) == .hangUp)
            #expect(traced.write([1, 2, 3]) == .hangUp)
            let now = runtime.now
            #expect(log.all == [
                SerialTraceEvent(time: now, direction: .read, what: .hangUp),
                SerialTraceEvent(time: now, direction: .written, what: .hangUp),
            ])
            traced.close()
            #expect(a.read(upTo: 16).1 == .failed(.closed))   // close reached the wrapped link
        }
    }

    @Test("over a real pty pair: bytes unchanged both ways, reported with the right direction")
    func overAPTY() async throws {
        let pair = try PTYLink.openPair()
        let log = EventLog()
        let traced = TracingLink(wrapping: pair.master) { log.add($0) }
        defer { traced.close(); pair.slave.close() }
        let down = pattern(3000, seed: 5)
        let (got, end) = await Pump(writer: traced, reader: pair.slave, data: down).run()
        #expect(end == nil && got == down)
        let up = pattern(2000, seed: 6)
        let (gotUp, endUp) = await Pump(writer: pair.slave, reader: traced, data: up).run()
        #expect(endUp == nil && gotUp == up)
        #expect(log.bytes(.written) == down)
        #expect(log.bytes(.read) == up)
    }
}
