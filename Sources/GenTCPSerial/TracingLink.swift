import GenTCP
import GenTCPCore
import Synchronization

/// A ``SerialLink`` that passes everything through to another link and tells a sink about every
/// chunk read or written: for `gentcp --verbose` traces, logs and tests.
///
/// ```swift
/// let formatter = SerialTraceFormatter(origin: RealRuntime.shared.now)
/// let link = TracingLink(wrapping: try PTYLink(path: "/dev/pts/3")) { event in
///     for line in formatter.lines(for: event) { print(line) }
/// }
/// let driver = ATDriver(link: link, configuration: ATConfiguration(dialect: .espAT))
/// ```
///
/// - **Unchanged traffic.** Reads, writes, arming, the delegate and close go to the wrapped link
///   as they are; results come back as the wrapped link gave them (short writes, `wouldBlock`,
///   hang-ups). The delegate is called with this link, so a delegate that reads from the link
///   it is given reads through the trace. Nothing is buffered, delayed or reordered; the only
///   cost is the sink's.
/// - **Events.** After a read or write that moved bytes, the sink gets the bytes, the direction
///   and the time from `runtime` (virtual time on a simulated runtime). The first
///   ``LinkIO/hangUp`` and the first ``LinkIO/failed(_:)`` in each direction are reported too;
///   later ones (a hang-up is repeated by every call) are not. `wouldBlock` and empty transfers
///   are not reported.
/// - **Threading.** The sink runs synchronously on the thread that called `read` or `write`,
///   after the wrapped link returned and outside its locks, possibly on two threads at once (a
///   reader and a writer): it must be thread-safe and quick (hand the text to a writer thread
///   rather than block on a terminal). It must not call back into the link. Events of one
///   direction arrive in order when the link's user reads (or writes) from one context at a
///   time; a read and a write on two threads may reach the sink in either order.
public final class TracingLink: SerialLink {
    /// The link everything goes to.
    public let link: any SerialLink
    /// The clock that stamps events.
    public let runtime: any Runtime
    private let sink: @Sendable (SerialTraceEvent) -> Void
    // Whether a hang-up or failure was already reported: bit 0 written, bit 1 read.
    private let ended = Atomic<UInt8>(0)

    /// Wraps `link`.
    /// - Parameters:
    ///   - link: the link to pass everything to; this link owns it from now on (close this one).
    ///   - runtime: stamps the events (`RealRuntime.shared` for wall time, the `SimRuntime` of
    ///     a simulation for virtual time).
    ///   - sink: told about every chunk; see the threading rules above.
    public init(wrapping link: any SerialLink, runtime: any Runtime = RealRuntime.shared,
                sink: @escaping @Sendable (SerialTraceEvent) -> Void) {
        self.link = link
        self.runtime = runtime
        self.sink = sink
    }

    /// The wrapped link's settings.
    public var configuration: SerialConfiguration { link.configuration }

    /// The wrapped link's description, so messages name the real device.
    public var description: String { link.description }

    public func setDelegate(_ delegate: (any SerialLinkDelegate)?) {
        link.setDelegate(delegate.map { TracingDelegate(outer: self, delegate: $0) })
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> LinkIO {
        let result = link.read(into: buffer)
        if case .bytes(let n) = result, n > 0 {
            sink(SerialTraceEvent(time: runtime.now, direction: .read,
                                  what: .bytes(Array(UnsafeRawBufferPointer(rebasing: buffer.prefix(n))))))
        } else {
            reportEnd(result, direction: .read)
        }
        return result
    }

    public func write(_ bytes: UnsafeRawBufferPointer) -> LinkIO {
        let result = link.write(bytes)
        if case .bytes(let n) = result, n > 0 {
            sink(SerialTraceEvent(time: runtime.now, direction: .written,
                                  what: .bytes(Array(UnsafeRawBufferPointer(rebasing: bytes.prefix(n))))))
        } else {
            reportEnd(result, direction: .written)
        }
        return result
    }

    public func armRead() { link.armRead() }
    public func armWrite() { link.armWrite() }
    public func close() { link.close() }

    /// Reports the first hang-up or failure in a direction.
    private func reportEnd(_ result: LinkIO, direction: SerialTraceEvent.Direction) {
        let what: SerialTraceEvent.What
        switch result {
        case .hangUp: what = .hangUp
        case .failed(let reason): what = .failed(reason)
        case .bytes, .wouldBlock: return
        }
        let bit: UInt8 = direction == .written ? 1 : 2
        let before = ended.bitwiseOr(bit, ordering: .relaxed).oldValue
        if before & bit == 0 { sink(SerialTraceEvent(time: runtime.now, direction: direction, what: what)) }
    }
}

/// Set on the wrapped link: hands readiness to the real delegate with the tracing link, so the
/// delegate's reads and writes go through the trace.
private final class TracingDelegate: SerialLinkDelegate {
    // Weak: the wrapped link holds this delegate, and the tracing link holds the wrapped link.
    weak let outer: TracingLink?
    let delegate: any SerialLinkDelegate

    init(outer: TracingLink, delegate: any SerialLinkDelegate) {
        self.outer = outer
        self.delegate = delegate
    }

    func linkIsReadable(_ link: any SerialLink) { delegate.linkIsReadable(outer ?? link) }
    func linkIsWritable(_ link: any SerialLink) { delegate.linkIsWritable(outer ?? link) }
}
