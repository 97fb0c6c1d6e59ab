import CGenTCPShims
#if canImport(Glibc)
import Glibc
#endif

// The reference: plain blocking BSD sockets on threads, as a C program would use them.

/// A joinable pthread running one closure.
final class RawThread: @unchecked Sendable {
    private var thread = pthread_t()

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "gentcp-bench: pthread_create failed (\(rc))")
    }

    func join() { pthread_join(thread, nil) }
}

/// Fails the benchmark loudly: a reference that does not work measures nothing.
func check(_ ok: Bool, _ what: @autoclosure () -> String) {
    if !ok {
        let e = cgentcp_errno()
        fatalError("gentcp-bench: \(what()) failed (errno \(e): \(String(cString: strerror(e))))")
    }
}

enum Raw {
    /// A blocking listener on 127.0.0.1, ephemeral port. Returns (fd, port).
    static func listen() -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        check(fd >= 0, "socket")
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, length) == 0 && Glibc.listen(fd, 16) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        check(ok, "bind/listen on 127.0.0.1")
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    static func loopback(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return a
    }

    static func accept(_ listener: Int32) -> Int32 {
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            if fd >= 0 { return fd }
            if cgentcp_errno() != EINTR { check(false, "accept") }
        }
    }

    /// A blocking connection to 127.0.0.1:port.
    static func connect(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        check(fd >= 0, "socket")
        var address = loopback(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        check(rc == 0, "connect to 127.0.0.1:\(port)")
        return fd
    }

    static func setNoDelay(_ fd: Int32) {
        var on: Int32 = 1
        check(setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size)) == 0,
              "TCP_NODELAY")
    }

    /// Reads up to `count` bytes; 0 at end of stream. `spinning`: never sleeps in the kernel,
    /// but retries a non-blocking `recv` in a loop until data or the end comes (the machine's
    /// limit: no wakeup ever). It yields the CPU between tries, as OTP's spinning schedulers do:
    /// on an idle CPU `sched_yield` returns at once, and on a busy one (the test suite runs this
    /// bench beside everything else) a loop that never yields held a core for seconds.
    @inline(__always)
    static func readSome(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, spinning: Bool = false) -> Int {
        while true {
            let n = spinning ? recv(fd, buffer, count, Int32(MSG_DONTWAIT)) : read(fd, buffer, count)
            if n >= 0 { return n }
            let e = cgentcp_errno()
            if e == EINTR { continue }
            if spinning && (e == EAGAIN || e == EWOULDBLOCK) {
                sched_yield()
                continue
            }
            check(false, "read")
            return 0
        }
    }

    /// Reads exactly `count` bytes; false at end of stream.
    @inline(__always)
    static func readExactly(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, spinning: Bool = false) -> Bool {
        var got = 0
        while got < count {
            let n = readSome(fd, buffer + got, count - got, spinning: spinning)
            if n == 0 { return false }
            got += n
        }
        return true
    }

    /// Writes all `count` bytes.
    @inline(__always)
    static func writeAll(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) {
        var done = 0
        while done < count {
            let n = send(fd, buffer + done, count - done, Int32(MSG_NOSIGNAL))
            if n > 0 {
                done += n
            } else if cgentcp_errno() != EINTR {
                check(false, "send")
            }
        }
    }

    /// The bulk sender: accepts one connection, waits for the receiver's one-byte "go", writes
    /// `total` bytes in `chunk`-sized writes, closes. `framed`: the bytes are ``Frame``s
    /// (`chunk` and `total` must be multiples of its size).
    static func bulkWriter(listener: Int32, total: Int, chunk: Int, framed: Bool = false) -> RawThread {
        RawThread {
            let fd = accept(listener)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
            defer { buffer.deallocate() }
            memset(buffer, 0x5A, chunk)
            if framed {
                for at in stride(from: 0, to: chunk, by: Frame.size) {
                    Frame.bytes.withUnsafeBytes { (buffer + at).copyMemory(from: $0.baseAddress!, byteCount: Frame.size) }
                }
            }
            var go: UInt8 = 0
            check(readExactly(fd, &go, 1), "reading the go byte")
            var left = total
            while left > 0 {
                let n = min(left, chunk)
                writeAll(fd, buffer, n)
                left -= n
            }
            close(fd)
        }
    }

    /// The echo peer of the ping-pong: accepts one connection (nodelay), echoes `size`-byte
    /// messages until end of stream.
    static func echoPeer(listener: Int32, size: Int) -> RawThread {
        RawThread {
            let fd = accept(listener)
            setNoDelay(fd)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
            defer { buffer.deallocate() }
            while readExactly(fd, buffer, size) {
                writeAll(fd, buffer, size)
            }
            close(fd)
        }
    }
}
