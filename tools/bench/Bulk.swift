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
    /// ``frameSize``-byte frames, read as a length-prefixed protocol reads them, `recv(4)` for
    /// the length and `recv(length)` for the body (passive).
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
                let header = try await socket.recv(4).bytes
                let length = header.reduce(0) { $0 << 8 | Int($1) }
                check(length == frameSize - 4, "a frame of \(length) bytes after \(got) bytes")
                got += 4 + (try await socket.recv(length)).count
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

    /// The frames of the framed bulk case: a 4-byte big-endian length (60) and its body.
    static let frameSize = 64

    /// The reference: blocking `read(readSize)` on this thread, raw blocking writer thread.
    /// `spinning`: non-blocking reads in a busy loop instead (``Raw/readSome(_:_:_:spinning:)``).
    /// `framed`: ``frameSize``-byte frames, each read as the others are asked to read it, exactly
    /// the 4-byte length and then the body (`readSize` must then hold a frame).
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
            check(Raw.readExactly(fd, buffer, 4, spinning: spinning), "frame header (early end after \(got) bytes)")
            let length = Int(buffer.loadUnaligned(as: UInt32.self).bigEndian)
            check(length == frameSize - 4, "frame length")
            check(Raw.readExactly(fd, buffer + 4, length, spinning: spinning), "frame body")
            got += 4 + length
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
