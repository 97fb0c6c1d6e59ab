import GenTCPCore

/// What a board gives GenTCP: one serial line, a millisecond clock, entropy and a way to sleep.
///
/// The run loop (``BoardRuntime``) is the only caller. Every requirement is non-blocking except
/// ``idle(until:)``, which is where a microcontroller executes WFI. A firmware implements it
/// over its UART driver and timer; on the host, the simulation and pty runs implement it over a
/// `MemoryLink` on the virtual clock or a pty on the real clock.
public protocol Board {
    /// Moves bytes that arrived on the line into `buffer` without waiting; returns how many
    /// (0 when none). A UART driver should buffer its input in an interrupt-fed ring so that
    /// nothing is lost while the loop is busy sending a frame.
    mutating func readLine(into buffer: UnsafeMutableRawBufferPointer) -> Int

    /// Writes `bytes` to the line; returns how many it took (fewer than asked: the rest is
    /// offered again on the next turn). A polled UART may simply take them all.
    mutating func writeLine(_ bytes: UnsafeRawBufferPointer) -> Int

    /// Milliseconds on a monotonic clock that never goes backwards.
    func now() -> MillisecondInstant

    /// 64 bits that differ from boot to boot: a hardware RNG, or a unique ID mixed with timer
    /// jitter and ADC noise. Seeds the stack's secret for initial sequence numbers (RFC 6528),
    /// ephemeral ports and IP identifiers; asked once at start.
    mutating func entropy() -> UInt64

    /// Nothing is due before `deadline` (nil: no timer armed): sleep until line input arrives
    /// or the deadline passes. Returning early is always allowed.
    mutating func idle(until deadline: MillisecondInstant?)

    /// A line for the board's debug console (see the default in the extension).
    mutating func log(_ line: StaticString)
}

extension Board {
    /// A line for the board's debug console, never the network line: the run loop reports
    /// start-up, connections opening and closing, and failures here. By default it is dropped.
    public mutating func log(_ line: StaticString) {}
}
