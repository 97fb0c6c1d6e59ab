import GenTCPSerial
import Synchronization

/// A delegate that forwards readiness to closures.
final class ClosureDelegate: SerialLinkDelegate {
    let onReadable: @Sendable (any SerialLink) -> Void
    let onWritable: @Sendable (any SerialLink) -> Void

    init(onReadable: @escaping @Sendable (any SerialLink) -> Void = { _ in },
         onWritable: @escaping @Sendable (any SerialLink) -> Void = { _ in }) {
        self.onReadable = onReadable
        self.onWritable = onWritable
    }

    func linkIsReadable(_ link: any SerialLink) { onReadable(link) }
    func linkIsWritable(_ link: any SerialLink) { onWritable(link) }
}

/// Waits for one readiness call of a link; records that it did not come synchronously.
final class ReadinessProbe: Sendable {
    private let state = Mutex<(count: Int, waiter: CheckedContinuation<Void, Never>?)>((0, nil))

    func delegate() -> ClosureDelegate {
        ClosureDelegate(onReadable: { _ in self.fire() }, onWritable: { _ in self.fire() })
    }

    private func fire() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.count += 1
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    var count: Int { state.withLock { $0.count } }

    /// Returns once at least `count` calls happened.
    func wait(for count: Int = 1) async {
        while self.count < count {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s -> Bool in
                    if s.count >= count { return true }
                    s.waiter = c
                    return false
                }
                if ready { c.resume() }
            }
        }
    }
}

/// Moves `data` from `writer` to `reader` through readiness callbacks only, and returns what
/// the reader got (until it has `expected` bytes, or a hang-up, or a failure).
final class Pump: Sendable {
    struct State {
        var data: [UInt8]
        var sent = 0
        var received: [UInt8] = []
        var expected: Int
        var end: LinkIO?
        var done: CheckedContinuation<([UInt8], LinkIO?), Never>?
        var finished = false
        var maxChunk: Int
        var shortWrites = 0
        /// Times the writer got wouldBlock and armed (each one answered by a readiness call).
        var writeWaits = 0
    }

    let state: Mutex<State>
    let writer: any SerialLink
    let reader: any SerialLink
    /// Called (in the reader's context) with the virtual or real time of each read, if set.
    let onRead: (@Sendable (Int) -> Void)?

    init(writer: any SerialLink, reader: any SerialLink, data: [UInt8], expected: Int? = nil,
         maxChunk: Int = 4096, onRead: (@Sendable (Int) -> Void)? = nil) {
        self.writer = writer
        self.reader = reader
        self.onRead = onRead
        state = Mutex(State(data: data, expected: expected ?? data.count, maxChunk: maxChunk))
    }

    func run() async -> ([UInt8], LinkIO?) {
        writer.setDelegate(ClosureDelegate(onWritable: { _ in self.writeMore() }))
        reader.setDelegate(ClosureDelegate(onReadable: { _ in self.readMore() }))
        return await withCheckedContinuation { (c: CheckedContinuation<([UInt8], LinkIO?), Never>) in
            state.withLock { $0.done = c }
            writer.armWrite()
            reader.armRead()
        }
    }

    var shortWrites: Int { state.withLock { $0.shortWrites } }
    var writeWaits: Int { state.withLock { $0.writeWaits } }

    private func writeMore() {
        while true {
            let (chunk, offset): ([UInt8], Int) = state.withLock { s in
                let end = min(s.data.count, s.sent + s.maxChunk)
                return (Array(s.data[s.sent..<end]), s.sent)
            }
            if chunk.isEmpty { return }
            let result = writer.write(chunk)
            switch result {
            case .bytes(let n):
                state.withLock { s in
                    s.sent = offset + n
                    if n < chunk.count { s.shortWrites += 1 }
                }
            case .wouldBlock:
                state.withLock { $0.writeWaits += 1 }
                writer.armWrite()
                return
            default:
                finish(result)
                return
            }
        }
    }

    private func readMore() {
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let result = buffer.withUnsafeMutableBytes { reader.read(into: $0) }
            switch result {
            case .bytes(let n):
                onRead?(n)
                let complete = state.withLock { s in
                    s.received += buffer[0..<n]
                    return s.received.count >= s.expected
                }
                if complete {
                    finish(nil)
                    return
                }
            case .wouldBlock:
                reader.armRead()
                return
            default:
                finish(result)
                return
            }
        }
    }

    private func finish(_ end: LinkIO?) {
        let (waiter, received, finalEnd) = state.withLock { s -> (CheckedContinuation<([UInt8], LinkIO?), Never>?, [UInt8], LinkIO?) in
            if s.finished { return (nil, [], nil) }
            s.finished = true
            s.end = end
            defer { s.done = nil }
            return (s.done, s.received, s.end)
        }
        waiter?.resume(returning: (received, finalEnd))
    }
}

/// Deterministic test bytes.
func pattern(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var x = seed
    return (0..<count).map { _ in
        x = x &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: x >> 33)
    }
}
