/// Ready-made packets (echo replies and requests, resets for stray segments) waiting for the
/// driver: a fixed number of MTU-sized slots allocated once.
struct ControlQueue {
    private var storage: [UInt8]
    private var lengths: [Int]
    private let slotSize: Int
    private var head = 0
    private(set) var count = 0

    init(slots: Int, slotSize: Int) {
        self.slotSize = slotSize
        storage = [UInt8](repeating: 0, count: max(slots, 0) * slotSize)
        lengths = [Int](repeating: 0, count: max(slots, 0))
    }

    var isFull: Bool { count == lengths.count }

    /// Slots free for ``push(_:)``.
    var freeSlots: Int { lengths.count - count }

    /// Lets `build` write one packet of at most `slotSize` bytes into a free slot; `build`
    /// returns the length (0 to give the slot back). False when the queue is full.
    mutating func push(_ build: (UnsafeMutableRawBufferPointer) -> Int) -> Bool {
        guard !isFull else { return false }
        let slot = (head + count) % lengths.count
        let size = slotSize
        let length = storage.withUnsafeMutableBytes { all in
            build(UnsafeMutableRawBufferPointer(rebasing: all[(slot * size)..<((slot + 1) * size)]))
        }
        guard length > 0 else { return true }
        lengths[slot] = length
        count += 1
        return true
    }

    /// Copies the oldest packet into `buffer` and removes it; nil when empty. A packet longer
    /// than `buffer` is dropped (returns 0).
    mutating func pop(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard count > 0 else { return nil }
        let length = lengths[head]
        let start = head * slotSize
        head = (head + 1) % lengths.count
        count -= 1
        guard length <= buffer.count else { return 0 }
        storage.withUnsafeBytes { all in
            buffer.baseAddress!.copyMemory(from: all.baseAddress!.advanced(by: start), byteCount: length)
        }
        return length
    }
}

/// Events waiting for the driver, in a fixed ring.
struct EventQueue {
    private var slots: [StackEvent?]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        slots = [StackEvent?](repeating: nil, count: max(capacity, 1))
    }

    mutating func push(_ event: StackEvent) -> Bool {
        guard count < slots.count else { return false }
        slots[(head + count) % slots.count] = event
        count += 1
        return true
    }

    mutating func pop() -> StackEvent? {
        guard count > 0 else { return nil }
        let event = slots[head]
        slots[head] = nil
        head = (head + 1) % slots.count
        count -= 1
        return event
    }
}
