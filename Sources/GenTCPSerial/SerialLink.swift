import GenTCPCore

/// A byte stream over a serial line: what the `slip` and `at` drivers take.
///
/// Three kinds implement it: ``SerialPortLink`` (a real port through libserialport),
/// ``PTYLink`` (a pty or tty through termios) and ``MemoryLink`` (an in-memory pair with baud
/// pacing and fault injection, for simulation).
///
/// ## How a driver uses a link
/// 1. Set a delegate with ``setDelegate(_:)``.
/// 2. Call ``read(into:)`` until it returns ``LinkIO/wouldBlock``, then ``armRead()``; the
///    delegate's ``SerialLinkDelegate/linkIsReadable(_:)`` comes once when the link is readable
///    (or hung up, or failed: the next read tells which). Writing is the same with
///    ``write(_:)``, ``armWrite()`` and ``SerialLinkDelegate/linkIsWritable(_:)``; a write may
///    be short.
/// 3. ``LinkIO/hangUp`` means the other side is gone (a pty whose other end closed, a USB
///    adapter unplugged, the other end of a memory pair closed). It is never reported as "no
///    data", and it sticks: every later read and write says it again. Call ``close()``.
///
/// ## Threading
/// - Every method may be called from any thread. A link serialises its own calls; a driver
///   normally has one context (its process or queue) doing reads and writes.
/// - Readiness is **one-shot**: each ``armRead()`` / ``armWrite()`` gives at most one delegate
///   call, and arming twice before the call still gives one.
/// - Delegate calls come from the link's own context (the reactor thread for file-backed links,
///   the runtime's timer context for ``MemoryLink``), **never synchronously inside a link
///   call**, and never while the link holds a lock, so a delegate may read, write and re-arm
///   from inside the callback. Keep callbacks short: hand the work to the driver's own context.
/// - After ``close()`` no delegate call starts (one already under way may still finish), and
///   every operation returns ``LinkIO/failed(_:)`` with `closed`.
public protocol SerialLink: AnyObject, Sendable, CustomStringConvertible {
    /// The line's settings: baud rate and flow control (always 8 data bits, no parity, 1 stop bit).
    var configuration: SerialConfiguration { get }

    /// Sets (or with nil, removes) the object told about readiness. The link holds it strongly
    /// until ``close()`` or until it is replaced.
    func setDelegate(_ delegate: (any SerialLinkDelegate)?)

    /// Reads what is available, without blocking, into `buffer`.
    /// - Returns: ``LinkIO/bytes(_:)`` with the count (at least 1, at most `buffer.count`),
    ///   ``LinkIO/wouldBlock`` when nothing is there yet, ``LinkIO/hangUp`` when the other side
    ///   is gone and everything it sent has been read, or ``LinkIO/failed(_:)``. An empty buffer
    ///   gives `.bytes(0)` unless the link is closed.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> LinkIO

    /// Writes as much of `bytes` as fits now, without blocking.
    /// - Returns: ``LinkIO/bytes(_:)`` with the count accepted (possibly fewer than offered: a
    ///   short write), ``LinkIO/wouldBlock`` when nothing fits, ``LinkIO/hangUp`` or
    ///   ``LinkIO/failed(_:)``.
    func write(_ bytes: UnsafeRawBufferPointer) -> LinkIO

    /// Asks for one ``SerialLinkDelegate/linkIsReadable(_:)`` call when the link is readable,
    /// hung up or failed. If it already is, the call still comes later, from the link's context.
    func armRead()

    /// Asks for one ``SerialLinkDelegate/linkIsWritable(_:)`` call when a write can make
    /// progress (or would report a hang-up or failure).
    func armWrite()

    /// Closes the link and releases its descriptor or buffers; drops the delegate. Idempotent.
    func close()
}

/// Told about a ``SerialLink``'s readiness; see the threading rules there.
public protocol SerialLinkDelegate: AnyObject, Sendable {
    /// The link became readable (or hung up, or failed) after ``SerialLink/armRead()``.
    func linkIsReadable(_ link: any SerialLink)
    /// The link can take bytes (or would report a hang-up or failure) after ``SerialLink/armWrite()``.
    func linkIsWritable(_ link: any SerialLink)
}

/// The result of one non-blocking ``SerialLink`` read or write.
public enum LinkIO: Hashable, Sendable {
    /// This many bytes were transferred.
    case bytes(Int)
    /// Nothing can be transferred now: arm and wait.
    case wouldBlock
    /// The other side is gone (pty closed, device unplugged, modem line hung up). Permanent.
    case hangUp
    /// The operation failed, as the reason says (`closed` after ``SerialLink/close()``, `eio`, ...).
    case failed(SocketError.Reason)

    /// The count for ``bytes(_:)``, else nil.
    public var count: Int? {
        if case .bytes(let n) = self { return n }
        return nil
    }
}

/// Flow control on a serial line.
public enum FlowControl: String, Hashable, Sendable, CaseIterable {
    /// No flow control.
    case none
    /// Hardware flow control on the RTS and CTS lines.
    case rtsCts = "rts-cts"
    /// Software flow control with XON (0x11) and XOFF (0x13) bytes.
    case xonXoff = "xon-xoff"
    /// Hardware flow control on DTR and DSR. Linux termios has none: opening a port or pty on
    /// Linux with it fails with `enotsup`.
    case dtrDsr = "dtr-dsr"
}

/// A serial line's settings. The frame is always 8N1 (8 data bits, no parity, 1 stop bit), which
/// is what SLIP boards and AT modems use; each byte therefore takes 10 bit times on the line.
public struct SerialConfiguration: Hashable, Sendable, CustomStringConvertible {
    /// Bits per second (any positive value; real ports may refuse a rate their UART cannot do).
    public var baudRate: Int
    /// Flow control.
    public var flowControl: FlowControl

    /// - Parameters:
    ///   - baudRate: bits per second, greater than 0 (115200 by default).
    ///   - flowControl: ``FlowControl/none`` by default.
    public init(baudRate: Int = 115_200, flowControl: FlowControl = .none) {
        self.baudRate = baudRate
        self.flowControl = flowControl
    }

    /// Bits on the line per byte: start bit, 8 data bits, stop bit.
    public static let bitsPerByte = 10

    /// E.g. `115200 8N1, flow none`.
    public var description: String { "\(baudRate) 8N1, flow \(flowControl.rawValue)" }
}

extension SerialLink {
    /// Writes from an array; see ``write(_:)``.
    public func write(_ bytes: [UInt8]) -> LinkIO {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Reads up to `maxCount` bytes into a new array; the array is empty unless the result is
    /// ``LinkIO/bytes(_:)``.
    public func read(upTo maxCount: Int) -> ([UInt8], LinkIO) {
        var result = LinkIO.wouldBlock
        let bytes = [UInt8](unsafeUninitializedCapacity: max(0, maxCount)) { buffer, initialized in
            result = read(into: UnsafeMutableRawBufferPointer(buffer))
            initialized = result.count ?? 0
        }
        return (bytes, result)
    }
}
