/// A first-in first-out queue of at most `capacity` elements, its storage allocated once: the
/// interfaces' events and the messages waiting for a program.
struct FixedQueue<Element> {
    private var slots: [Element?]
    private var head = 0
    /// Elements queued.
    private(set) var count = 0

    /// An empty queue for `capacity` elements (at least one).
    init(capacity: Int) { slots = [Element?](repeating: nil, count: max(capacity, 1)) }

    var isEmpty: Bool { count == 0 }

    /// Appends `element`; false (and nothing queued) when the queue is full.
    mutating func push(_ element: Element) -> Bool {
        guard count < slots.count else { return false }
        slots[(head + count) % slots.count] = element
        count += 1
        return true
    }

    /// Removes and returns the oldest element, or nil.
    mutating func pop() -> Element? {
        guard count > 0 else { return nil }
        let element = slots[head]
        slots[head] = nil
        head = (head + 1) % slots.count
        count -= 1
        return element
    }

    /// Drops every element `shouldRemove` accepts, keeping the others in order.
    mutating func removeAll(where shouldRemove: (Element) -> Bool) {
        var kept = 0
        for i in 0..<count {
            let element = slots[(head + i) % slots.count]
            slots[(head + i) % slots.count] = nil
            if let element, !shouldRemove(element) {
                slots[(head + kept) % slots.count] = element
                kept += 1
            }
        }
        count = kept
    }
}
