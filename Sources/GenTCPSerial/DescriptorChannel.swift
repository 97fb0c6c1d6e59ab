import CGenTCPShims
import GenTCPCore
import GenTCPPOSIX
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The part ``PTYLink`` and ``SerialPortLink`` share: one non-blocking descriptor in the reactor,
/// the delegate, one-shot arming, hang-up detection and close.
///
/// The descriptor is used only under the lock, so `close` cannot race a read into a reused
/// descriptor number; the calls under it never block (the descriptor is `O_NONBLOCK`).
final class DescriptorChannel: ReactorHandler, Sendable {
    private struct State {
        var fd: Int32
        var token: UInt64 = 0
        var delegate: (any SerialLinkDelegate)?
        weak var owner: (any SerialLink)?
        var closed = false
        var hungUp = false
    }

    private let state: Mutex<State>

    init(fd: Int32) {
        state = Mutex(State(fd: fd))
    }

    /// Registers with the reactor; `owner` is the link passed to the delegate (held weakly).
    func start(owner: any SerialLink) {
        let fd = state.withLock { s in
            s.owner = owner
            return s.fd
        }
        let token = Reactor.shared.register(fd: fd, handler: self)
        state.withLock { $0.token = token }
    }

    func setDelegate(_ delegate: (any SerialLinkDelegate)?) {
        state.withLock { s in
            if !s.closed { s.delegate = delegate }
        }
    }

    /// Reactor thread: forwards what fired to the delegate, outside the lock.
    func ready(readable: Bool, writable: Bool) {
        let target: ((any SerialLinkDelegate), any SerialLink)? = state.withLock { s in
            guard !s.closed, let delegate = s.delegate, let owner = s.owner else { return nil }
            return (delegate, owner)
        }
        guard let (delegate, owner) = target else { return }
        if readable { delegate.linkIsReadable(owner) }
        if writable { delegate.linkIsWritable(owner) }
    }

    /// One-shot interest through `Reactor.arm`; the reactor calls back on its thread, never here.
    func arm(read: Bool, write: Bool) {
        let token: UInt64? = state.withLock { s in s.closed ? nil : s.token }
        if let token { Reactor.shared.arm(token, read: read, write: write) }
    }

    /// Runs one non-blocking transfer on the descriptor.
    ///
    /// `transfer` returns a count (> 0: bytes; 0: nothing moved, or end of file) or a negative
    /// errno. Nothing moved or a failure is then told apart with a zero-timeout `poll(2)`:
    /// `POLLHUP` is a hang-up (sticky), because on a hung-up tty `read` returns 0 or `EIO` and
    /// libserialport's reads return 0, which would otherwise pass for "no data".
    func transfer(_ transfer: (Int32) -> Int) -> LinkIO {
        state.withLock { s in
            if s.closed { return .failed(.closed) }
            if s.hungUp { return .hangUp }
            let result = transfer(s.fd)
            if result > 0 { return .bytes(result) }
            let hangUp = DescriptorChannel.pollHangUp(s.fd)
            // EIO from a tty means its other side is gone (a pty whose master closed, an adapter
            // pulled), whatever poll says: right after a pty's master closes, `read` already
            // fails with EIO while `poll` does not yet show POLLHUP (seen under CPU load).
            if hangUp == .hungUp || (result < 0 && -result == Int(EIO)) {
                s.hungUp = true
                return .hangUp
            }
            if result == 0 || -result == Int(EAGAIN) || -result == Int(EWOULDBLOCK) || -result == Int(EINTR) {
                return hangUp == .error ? .failed(.ioError) : .wouldBlock
            }
            return .failed(SocketError.Reason(serialErrno: Int32(-result)))
        }
    }

    private enum LineState { case open, hungUp, error }

    /// `poll(2)` with a zero timeout: has the other side hung up?
    private static func pollHangUp(_ fd: Int32) -> LineState {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, 0) == 1 else { return .open }
        if entry.revents & Int16(POLLHUP) != 0 { return .hungUp }
        if entry.revents & Int16(POLLERR | POLLNVAL) != 0 { return .error }
        return .open
    }

    /// Deregisters from the reactor, then lets `closer` release the descriptor. Idempotent.
    func close(_ closer: (Int32) -> Void) {
        state.withLock { s in
            guard !s.closed else { return }
            s.closed = true
            s.delegate = nil
            Reactor.shared.deregister(s.token)
            closer(s.fd)
            s.fd = -1
        }
    }

    /// Runs `body` with the descriptor under the lock; false (without running it) when closed.
    func withOpenDescriptor(_ body: (Int32) -> Void) -> Bool {
        state.withLock { s in
            if s.closed { return false }
            body(s.fd)
            return true
        }
    }

    var isClosed: Bool { state.withLock { $0.closed } }
}
