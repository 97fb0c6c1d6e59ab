import GenTCP
import GenTCPCore
import GenTCPPOSIX
#if canImport(Glibc)
import Glibc
#endif

/// Bulk transfer, one way: `total` bytes from a sender to a receiver; the receiver is timed from
/// the moment it sends a one-byte "go" (the sender waits for it) until it holds every byte.
enum Bulk {
    /// Size of each write of the senders (raw and GenTCP).
    static let writeSize = 64 * 1024

    /// GenTCP receiver, raw blocking writer thread. `active`: `{active, true}` with messages
    /// through `Process.receive`; otherwise passive `recv(0)`. `framed`: the writer sends
    /// ``Frame``s, read one by one with ``Frame/recv(on:)`` (passive).
    static func genTCPReceiver(total: Int, buffer: Int, active: Bool, framed: Bool = false,
                               driver: POSIXDriver) async throws -> Sample {
        let (listener, port) = Raw.listen()
        let writer = Raw.bulkWriter(listener: listener, total: total, chunk: writeSize, framed: framed)
        defer {
            writer.join()
            close(listener)
        }
        return try await Process.run {
            let socket = try await Socket.connect(
                "127.0.0.1", port: port,
                options: [.binary, .active(active ? .active : .passive), .buffer(buffer)], driver: driver)
            defer { socket.close() }
            return try await receive(total: total, on: socket, active: active, framed: framed)
        }
    }

    /// GenTCP on both ends: a GenTCP sender process (`send` of 64 KiB chunks) and a passive
    /// GenTCP receiver.
    static func genTCPBothEnds(total: Int, buffer: Int, driver: POSIXDriver) async throws -> Sample {
        try await Process.run {
            let listener = try ListenSocket.listen(
                port: 0, options: [.binary, .active(.passive), .localAddress(.loopbackV4)], driver: driver)
            defer { listener.close() }
            let port = try listener.port()
            let sender = Process.spawn {
                let s = try await listener.accept(timeout: 10_000)
                defer { s.close() }
                try await sendAfterGo(total: total, on: s)
            }
            let socket = try await Socket.connect(
                "127.0.0.1", port: port, options: [.binary, .active(.passive), .buffer(buffer)], driver: driver)
            defer { socket.close() }
            let sample = try await receive(total: total, on: socket, active: false)
            let reason = await sender.waitForExit()
            precondition(reason == .normal, "gentcp-bench: the GenTCP sender failed: \(reason)")
            return sample
        }
    }

    /// The GenTCP sender of every bulk case (plain, TLS, `--scale`): waits for the receiver's
    /// one-byte "go", then sends `total` bytes in `writeSize` `send`s.
    static func sendAfterGo(total: Int, on s: Socket) async throws(SocketError) {
        _ = try await s.recv(1)
        let chunk = [UInt8](repeating: 0x5A, count: writeSize)
        var left = total
        while left > 0 {
            if left >= chunk.count {
                try await s.send(chunk)
                left -= chunk.count
            } else {
                try await s.send(chunk[0..<left])
                left = 0
            }
        }
    }

    /// The timed part of a GenTCP receiver.
    private static func receive(total: Int, on socket: Socket, active: Bool, framed: Bool = false) async throws -> Sample {
        let start = Snapshot.now()
        try await socket.send([1])
        var got = 0
        var deliveries = 0
        if active {
            while got < total {
                switch try await Process.receive() {
                case .tcp(_, let payload)?:
                    got += payload.count
                    deliveries += 1
                case let other:
                    fatalError("gentcp-bench: unexpected message \(String(describing: other)) after \(got) bytes")
                }
            }
        } else if framed {
            while got < total {
                got += try await Frame.recv(on: socket)
                deliveries += 1
            }
        } else {
            while got < total {
                got += try await socket.recv(0).count
                deliveries += 1
            }
        }
        var sample = Snapshot.now() - start
        sample.deliveries = deliveries
        return sample
    }

    /// The reference: blocking `read(readSize)` on this thread, raw blocking writer thread.
    /// `spinning`: non-blocking reads in a busy loop instead (``Raw/readSome(_:_:_:spinning:)``).
    /// `framed`: ``Frame``s, each read with ``Frame/read(_:into:spinning:)`` (`readSize` must then
    /// hold a frame).
    static func rawReceiver(total: Int, readSize: Int, spinning: Bool = false, framed: Bool = false) -> Sample {
        let (listener, port) = Raw.listen()
        let writer = Raw.bulkWriter(listener: listener, total: total, chunk: writeSize, framed: framed)
        let fd = Raw.connect(port: port)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: readSize, alignment: 64)
        defer {
            buffer.deallocate()
            close(fd)
            writer.join()
            close(listener)
        }
        let start = Snapshot.now()
        var go: UInt8 = 1
        Raw.writeAll(fd, &go, 1)
        var got = 0
        var reads = 0
        while got < total && framed {
            check(Frame.read(fd, into: buffer, spinning: spinning), "a frame (early end after \(got) bytes)")
            got += Frame.size
            reads += 1
        }
        while got < total {
            let n = Raw.readSome(fd, buffer, readSize, spinning: spinning)
            check(n > 0, "bulk read (early end of stream after \(got) bytes)")
            got += n
            reads += 1
        }
        var sample = Snapshot.now() - start
        sample.deliveries = reads
        return sample
    }
}
