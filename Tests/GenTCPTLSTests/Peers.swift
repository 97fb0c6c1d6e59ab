import Foundation
import GenTCPTLS
import TLSTestSupport

#if canImport(Glibc)
import Glibc
#endif

struct PeerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A blocking TCP socket on 127.0.0.1 with a generous receive timeout: the transport the engine is
/// pumped over in the real-peer tests.
final class LoopbackSocket {
    let descriptor: Int32

    init(descriptor: Int32) {
        self.descriptor = descriptor
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    static func connect(port: UInt16) throws -> LoopbackSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PeerError("socket: errno \(errno)") }
        var address = loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            Glibc.close(fd)
            throw PeerError("connect to 127.0.0.1:\(port): errno \(errno)")
        }
        return LoopbackSocket(descriptor: fd)
    }

    static func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { throw PeerError("send: errno \(errno)") }
            offset += sent
        }
    }

    /// Bytes from the peer; empty at its end of stream.
    func receive(maximumCount: Int = 65_536) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maximumCount)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count >= 0 else { throw PeerError("recv: errno \(errno) (timed out?)") }
        return Array(buffer.prefix(count))
    }

    /// Sends FIN (`shutdown(2)` for writing).
    func shutdownWrite() { _ = Glibc.shutdown(descriptor, Int32(SHUT_WR)) }

    deinit { Glibc.close(descriptor) }
}

/// A listening socket on 127.0.0.1, port chosen by the kernel.
final class LoopbackListener {
    let descriptor: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = LoopbackSocket.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else {
            Glibc.close(fd)
            throw PeerError("bind/listen: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        descriptor = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    /// Waits (up to 30 s) for one connection.
    func accept() throws -> LoopbackSocket {
        var waiter = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&waiter, 1, 30_000) == 1 else { throw PeerError("no connection within 30 s") }
        let fd = Glibc.accept(descriptor, nil, nil)
        guard fd >= 0 else { throw PeerError("accept: errno \(errno)") }
        return LoopbackSocket(descriptor: fd)
    }

    deinit { Glibc.close(descriptor) }
}

/// Pumps a ``TLSEngine`` over a blocking socket.
struct SocketPump {
    let engine: TLSEngine
    let socket: LoopbackSocket
    /// Ciphertext read from the socket that the engine has not taken yet.
    var backlog: [UInt8] = []
    var ended = false

    mutating func flush() throws {
        let bytes = engine.takeCiphertext()
        if !bytes.isEmpty { try socket.send(bytes) }
    }

    /// Feeds the engine from the backlog, reading the socket when the backlog is empty.
    mutating func feed() throws {
        if backlog.isEmpty && !ended {
            backlog = try socket.receive()
            if backlog.isEmpty {
                ended = true
                engine.receiveEndOfStream()
            }
        }
        let taken = engine.receiveCiphertext(backlog)
        backlog.removeFirst(taken)
    }

    mutating func handshake() throws {
        while true {
            let done = try engine.handshake()
            try flush()
            if done { return }
            try feed()
        }
    }

    mutating func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            offset += try bytes[offset...].withUnsafeBytes { try engine.writePlaintext($0) }
            try flush()
        }
    }

    /// Reads until `count` bytes arrived or the stream ended; returns them and how it ended.
    mutating func read(count: Int) throws -> ([UInt8], TLSReadResult?) {
        var bytes: [UInt8] = []
        while bytes.count < count {
            let (chunk, end) = try engine.readPlaintext()
            try flush()
            bytes += chunk
            if let end { return (bytes, end) }
            if chunk.isEmpty { try feed() }
        }
        return (bytes, nil)
    }

    /// Reads until the stream ends; returns what came and how it ended.
    mutating func readToEnd() throws -> ([UInt8], TLSReadResult) {
        var bytes: [UInt8] = []
        while true {
            let (chunk, end) = try read(count: Int.max)
            bytes += chunk
            if let end { return (bytes, end) }
        }
    }
}

/// An `openssl` command running as a peer (`s_server` or `s_client`); killed at the end.
final class OpenSSLPeer {
    let process = Process()
    let output = Pipe()
    let input = Pipe()
    private var collected = Data()

    init(arguments: [String]) throws {
        guard let openssl = opensslPath else { throw PeerError("no openssl") }
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        process.standardInput = input
        try process.run()
    }

    /// Reads the peer's output until a line contains `marker` (or the peer exits); returns that line.
    func waitForLine(containing marker: String) throws -> String {
        while true {
            if let text = String(data: collected, encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.contains(marker) })
            {
                return String(line)
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty {
                throw PeerError("openssl ended before printing \(marker): \(String(decoding: collected, as: UTF8.self))")
            }
            collected.append(chunk)
        }
    }

    /// `s_server`'s port, from its `ACCEPT 127.0.0.1:PORT` line.
    func acceptPort() throws -> UInt16 {
        let line = try waitForLine(containing: "ACCEPT")
        guard let port = line.split(separator: ":").last.flatMap({ UInt16($0.trimmingCharacters(in: .whitespaces)) }) else {
            throw PeerError("no port in \(line)")
        }
        return port
    }

    /// Everything the peer printed, once it has exited.
    func outputToEnd() -> String {
        collected.append(output.fileHandleForReading.readDataToEndOfFile())
        process.waitUntilExit()
        return String(decoding: collected, as: UTF8.self)
    }

    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }

    deinit {
        kill()
    }
}
