/// Bytes for the module: command lines, and a send's payload held back until the `>` prompt.
///
/// Layout: `storage[start..<released]` may be written now; `storage[released..<end]` is the
/// staged payload. Capacity is fixed at init.
struct OutputBuffer {
    var storage: [UInt8]
    var start = 0
    var released = 0
    var end = 0
    /// Where the last command line sits, so a `busy p...` retry can write it again.
    var commandStart = 0
    var commandEnd = 0

    init(capacity: Int) {
        storage = [UInt8](repeating: 0, count: capacity)
    }

    var capacity: Int { storage.count }
    var pending: Int { released - start }
    var isEmpty: Bool { start == end }
    var holdsPayload: Bool { end > released }

    mutating func clear() {
        start = 0
        released = 0
        end = 0
        commandStart = 0
        commandEnd = 0
    }

    /// Appends the command and its terminator (released at once). Only called when empty.
    mutating func writeCommand(_ command: CommandWriter, terminator: StaticString) {
        clear()
        command.withBytes { bytes in
            for b in bytes {
                storage[end] = b
                end += 1
            }
        }
        let t = terminator.utf8Start
        for i in 0..<terminator.utf8CodeUnitCount {
            storage[end] = t[i]
            end += 1
        }
        released = end
        commandEnd = end
    }

    /// Stages payload after the command, held until ``releasePayload()``.
    mutating func stagePayload(_ payload: UnsafeRawBufferPointer) {
        for b in payload {
            storage[end] = b
            end += 1
        }
    }

    mutating func releasePayload() { released = end }

    /// Drops a staged payload that will never be released.
    mutating func dropHeldPayload() {
        end = released
        if start == end { clear() }
    }

    /// Makes the last command writable again (after `busy p...`), if it was already written.
    mutating func rewindCommand() {
        guard start >= commandEnd, commandEnd > commandStart else { return }
        start = commandStart
    }

    mutating func consume(_ count: Int) {
        start += min(max(count, 0), pending)
        if start == end { clear() }
    }
}

/// The information lines of the command in flight, kept in fixed storage.
struct ResponseLines {
    var storage: [UInt8]
    var ends: [Int]
    var used = 0
    var lineCount = 0
    var dropped = 0

    init(byteCapacity: Int, lineCapacity: Int) {
        storage = [UInt8](repeating: 0, count: max(byteCapacity, 0))
        ends = [Int](repeating: 0, count: max(lineCapacity, 0))
    }

    mutating func clear() {
        used = 0
        lineCount = 0
        dropped = 0
    }

    mutating func append(_ source: [UInt8], from start: Int, to end: Int) {
        let n = end - start
        guard lineCount < ends.count, n >= 0, n <= storage.count - used, start >= 0, end <= source.count else {
            dropped += 1
            return
        }
        for i in 0..<n { storage[used + i] = source[start + i] }
        used += n
        ends[lineCount] = used
        lineCount += 1
    }

    func withLine<R>(_ index: Int, _ body: (ATLine) -> R) -> R? {
        guard index >= 0, index < lineCount else { return nil }
        let start = index == 0 ? 0 : ends[index - 1]
        let end = ends[index]
        return storage.withUnsafeBytes { raw in body(ATLine(UnsafeRawBufferPointer(rebasing: raw[start..<end]))) }
    }
}

/// A fixed ring of events waiting to be handed out.
struct EventQueue {
    var storage: [ModemEvent]
    var head = 0
    var count = 0
    var dropped = 0

    init(capacity: Int) {
        storage = [ModemEvent](repeating: .moduleReset, count: max(capacity, 1))
    }

    mutating func push(_ event: ModemEvent) {
        guard count < storage.count else {
            dropped += 1
            return
        }
        storage[(head + count) % storage.count] = event
        count += 1
    }

    mutating func pop() -> ModemEvent? {
        guard count > 0 else { return nil }
        let event = storage[head]
        head = (head + 1) % storage.count
        count -= 1
        return event
    }
}
