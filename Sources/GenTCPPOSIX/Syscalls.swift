import CGenTCPShims
#if canImport(Glibc)
import Glibc
#endif

/// The one funnel every system call of the posix driver goes through.
///
/// Production code uses ``system``. Tests build a table that wraps it to force what loopback
/// rarely produces on demand: `EINPROGRESS`, `EAGAIN`, short writes, `ECONNRESET`, `EMFILE`.
/// Each entry returns the C call's result and sets `errno` the way the C call does.
public struct Syscalls: Sendable {
    /// `socket(2)`.
    public var socket: @Sendable (_ domain: Int32, _ type: Int32, _ proto: Int32) -> Int32
    /// `connect(2)`.
    public var connect: @Sendable (_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32
    /// `bind(2)`.
    public var bind: @Sendable (_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32
    /// `listen(2)`.
    public var listen: @Sendable (_ fd: Int32, _ backlog: Int32) -> Int32
    /// `accept4(2)`.
    public var accept: @Sendable (_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: UnsafeMutablePointer<socklen_t>?, _ flags: Int32) -> Int32
    /// `read(2)`.
    public var read: @Sendable (_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int
    /// `sendmsg(2)` with `MSG_NOSIGNAL` (a gather write that never raises SIGPIPE).
    public var writev: @Sendable (_ fd: Int32, _ iov: UnsafePointer<iovec>, _ count: Int32) -> Int
    /// `shutdown(2)`.
    public var shutdown: @Sendable (_ fd: Int32, _ how: Int32) -> Int32
    /// `close(2)`.
    public var close: @Sendable (_ fd: Int32) -> Int32
    /// `getsockopt(2)` for `SO_ERROR` after a non-blocking connect.
    public var socketError: @Sendable (_ fd: Int32) -> Int32
    /// `recvmsg(2)` of one datagram with `MSG_TRUNC`: its full length (the first `capacity`
    /// bytes in `buffer`), or -1 with `errno`. `source` gets the sender; `drops` the kernel's
    /// `SO_RXQ_OVFL` count when the datagram carries one (left alone otherwise).
    /// Defaults to the real call; not a parameter of ``init(socket:connect:bind:listen:accept:read:writev:shutdown:close:socketError:)``.
    public var receiveDatagram: @Sendable (
        _ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ capacity: Int,
        _ source: UnsafeMutablePointer<sockaddr_storage>, _ drops: UnsafeMutablePointer<UInt32>
    ) -> Int = { fd, buffer, capacity, source, drops in
        cgentcp_recv_datagram(fd, buffer, UInt(capacity), source, drops)
    }
    /// `sendmsg(2)` of one datagram gathered from `iov` to `destination` (nil: the connected
    /// peer) with `MSG_NOSIGNAL`: the byte count, or -1 with `errno`. Defaults to the real call.
    public var sendDatagram: @Sendable (
        _ fd: Int32, _ iov: UnsafePointer<iovec>?, _ count: Int32,
        _ destination: UnsafePointer<sockaddr>?, _ length: socklen_t
    ) -> Int = { fd, iov, count, destination, length in
        cgentcp_send_datagram(fd, iov, count, destination, length)
    }

    /// The real system calls.
    public static let system = Syscalls(
        socket: { Glibc.socket($0, $1, $2) },
        connect: { Glibc.connect($0, $1, $2) },
        bind: { Glibc.bind($0, $1, $2) },
        listen: { Glibc.listen($0, $1) },
        accept: { cgentcp_accept4($0, $1, $2, $3) },
        read: { Glibc.read($0, $1, $2) },
        writev: { fd, iov, count in
            var message = msghdr()
            message.msg_iov = UnsafeMutablePointer(mutating: iov)
            message.msg_iovlen = Int(count)
            return Glibc.sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
        },
        shutdown: { Glibc.shutdown($0, $1) },
        close: { Glibc.close($0) },
        socketError: { fd in
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) != 0 { return cgentcp_errno() }
            return value
        }
    )

    /// A table of system calls, one closure per C call; tests start from ``system``'s entries
    /// and replace the ones they want to fail.
    public init(
        socket: @escaping @Sendable (Int32, Int32, Int32) -> Int32,
        connect: @escaping @Sendable (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32,
        bind: @escaping @Sendable (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32,
        listen: @escaping @Sendable (Int32, Int32) -> Int32,
        accept: @escaping @Sendable (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32,
        read: @escaping @Sendable (Int32, UnsafeMutableRawPointer?, Int) -> Int,
        writev: @escaping @Sendable (Int32, UnsafePointer<iovec>, Int32) -> Int,
        shutdown: @escaping @Sendable (Int32, Int32) -> Int32,
        close: @escaping @Sendable (Int32) -> Int32,
        socketError: @escaping @Sendable (Int32) -> Int32
    ) {
        self.socket = socket
        self.connect = connect
        self.bind = bind
        self.listen = listen
        self.accept = accept
        self.read = read
        self.writev = writev
        self.shutdown = shutdown
        self.close = close
        self.socketError = socketError
    }
}
