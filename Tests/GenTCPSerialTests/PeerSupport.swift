import Foundation
import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import GenTCPWire
import Synchronization
import Testing

// What the tests against real peers (the Linux kernel through tools/slip-tun, lwIP through
// tools/lwip-peer) share: the package root, starting helper programs, and clients for the
// services both boards run (echo on 7, SHA-256 digest sink on 9, file source on 19).

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ text: String) { description = text }
}

/// The package root (Tests/GenTCPSerialTests/<this file> → the root).
let peerPackageRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// Starts a helper program through `env`; its standard output is discarded, its standard error
/// goes to `stderrPath` when given (else it is inherited).
func startPeerProcess(_ arguments: [String], stderrPath: String? = nil) throws -> Foundation.Process {
    // A write to a peer that went away is EPIPE, never the end of the test run.
    signal(SIGPIPE, SIG_IGN)
    let p = Foundation.Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = arguments
    p.standardOutput = FileHandle.nullDevice
    if let stderrPath {
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: stderrPath)
    }
    try p.run()
    return p
}

/// Runs blocking work (a process's exit, a helper that sleeps) on a thread of its own, so that
/// it never holds one of the cooperative pool's few threads.
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
        let thread = Thread { c.resume(returning: body()) }
        thread.start()
    }
}

/// Waits (real time, up to `seconds`) until `path` exists. The limit is for a helper that never
/// starts, generous because starting one on a loaded machine takes seconds; the existence check
/// every 20 ms sleeps without holding a thread.
func waitForFile(_ path: String, seconds: Double = 60, what: String) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if FileManager.default.fileExists(atPath: path) { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestFailure("\(what) did not start within \(seconds) s")
}

/// Clients of the board's services. Every call has a timeout: connect 5 s, and sends and
/// receives fail when they make no progress for `stall` milliseconds.
struct PeerServices: Sendable {
    let driver: SLIPDriver
    var stall = 60_000

    var options: [Option] { [.binary, .active(.passive), .buffer(16384), .sendTimeout(.milliseconds(stall))] }

    /// Sends `data` to the digest sink (port 9), half-closes, and checks the SHA-256 it answers.
    /// Returns the time from connect to the digest.
    @discardableResult
    func upload(_ data: [UInt8]) async throws -> Duration {
        let u = try await Socket.connect("board", port: 9, options: options, timeout: 60_000, driver: driver)
        defer { u.close() }
        let start = ContinuousClock.now
        try await sendAll(u, data)
        try u.shutdown(.write)
        let digest = try await u.recv(32, timeout: .milliseconds(stall)).bytes
        let time = ContinuousClock.now - start
        #expect(digest == SHA256.hash(data), "the board's digest of \(data.count) bytes")
        return time
    }

    /// Reads `socket` until the peer closes it, each read bounded by the stall timeout; returns
    /// the byte count and the running digest.
    private func readToEnd(_ socket: Socket) async throws -> (Int, SHA256) {
        var digest = SHA256()
        var count = 0
        while true {
            do throws(SocketError) {
                let bytes = try await socket.recv(0, timeout: .milliseconds(stall)).bytes
                count += bytes.count
                digest.update(bytes)
            } catch {
                if error.reason == .closed { return (count, digest) }
                throw error
            }
        }
    }

    /// Reads the source (port 19) to its end and checks count and SHA-256 against `expected`.
    @discardableResult
    func download(_ expected: [UInt8]) async throws -> Duration {
        let d = try await Socket.connect("board", port: 19, options: options, timeout: 60_000, driver: driver)
        defer { d.close() }
        let start = ContinuousClock.now
        let (count, digest) = try await readToEnd(d)
        let time = ContinuousClock.now - start
        #expect(count == expected.count)
        #expect(digest.finalize() == SHA256.hash(expected), "the digest of the \(count) bytes received")
        return time
    }

    /// Sends `data` to the echo service (port 7) from a second process while this one reads it
    /// back; half-closes after the last byte and checks that exactly `data` came back before the
    /// board closed.
    @discardableResult
    func echo(_ data: [UInt8]) async throws -> Duration {
        let e = try await Socket.connect("board", port: 7, options: options, timeout: 60_000, driver: driver)
        defer { e.close() }
        let start = ContinuousClock.now
        let sendFailure = Mutex<SocketError?>(nil)
        Process.spawn {
            do throws(SocketError) {
                var offset = 0
                while offset < data.count {
                    let end = min(data.count, offset + 8192)
                    try await e.send(data[offset..<end])
                    offset = end
                }
                try e.shutdown(.write)
            } catch {
                sendFailure.withLock { $0 = error }
            }
        }
        let (count, digest) = try await readToEnd(e)
        let time = ContinuousClock.now - start
        #expect(sendFailure.withLock { $0 } == nil)
        #expect(count == data.count)
        #expect(digest.finalize() == SHA256.hash(data), "the digest of the \(count) bytes echoed")
        return time
    }
}

/// The line between our driver and a peer program on a pty: the pty pair alone, or, with
/// `faults`, a ``MemoryLink`` pair paced at `baud` on the real clock, injecting `faults` both
/// ways, whose far end a ``LinkRelay`` copies to the pty's master.
final class PeerLine: @unchecked Sendable {
    let pty: PTYLink.PTYPair
    /// The two ends of the faulty line, when there is one: ours, and the one relayed to the pty.
    let hostLink: MemoryLink?
    let boardLink: MemoryLink?
    let relay: LinkRelay?

    /// - Parameter peerName: names the relayed end (`memory:NAME`) in messages.
    init(faults: LineFaults?, baud: Int, seed: UInt64, peerName: String) throws {
        pty = try PTYLink.openPair(configuration: SerialConfiguration(baudRate: 921_600))
        if let faults {
            let (host, board) = try MemoryLink.pair(
                configuration: SerialConfiguration(baudRate: baud), runtime: RealRuntime.shared, bufferSize: 4096,
                faults: faults, seed: seed, names: ("memory:host", "memory:\(peerName)"))
            hostLink = host
            boardLink = board
            relay = LinkRelay(board, pty.master)
        } else {
            hostLink = nil
            boardLink = nil
            relay = nil
        }
    }

    /// Where our driver goes.
    var ourEnd: any SerialLink { hostLink ?? pty.master }

    /// Closes every link of the line.
    func close() {
        hostLink?.close()
        boardLink?.close()
        pty.master.close()
        pty.slave.close()
    }
}

/// Copies bytes both ways between two serial links, driven by their readiness only (no thread
/// of its own): what one link reads is written to the other, with backpressure (a direction
/// stops reading while its bytes are not taken). Used to put a faulty ``MemoryLink`` between our
/// driver and a program on a pty.
final class LinkRelay: Sendable {
    /// One direction: reads `from`, writes `to`, through a 4 KiB buffer.
    final class Direction: Sendable {
        let from: any SerialLink
        let to: any SerialLink
        private struct State {
            var buffer = [UInt8](repeating: 0, count: 4096)
            var start = 0
            var end = 0
            var stopped = false
            var moved = 0
        }
        private let state = Mutex(State())

        init(from: any SerialLink, to: any SerialLink) {
            self.from = from
            self.to = to
        }

        /// Bytes copied so far.
        var moved: Int { state.withLock { $0.moved } }

        /// Moves what it can; arms the link it waits for. Serialised by the state's lock (link
        /// calls never call a delegate synchronously, so this cannot re-enter).
        func pump() {
            state.withLock { s in
                while !s.stopped {
                    if s.start < s.end {
                        let (start, end) = (s.start, s.end)
                        let result = s.buffer.withUnsafeBytes { to.write(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
                        switch result {
                        case .bytes(let n):
                            s.start += n
                            s.moved += n
                        case .wouldBlock:
                            to.armWrite()
                            return
                        case .hangUp, .failed:
                            s.stopped = true
                        }
                    } else {
                        s.start = 0
                        s.end = 0
                        let result = s.buffer.withUnsafeMutableBytes { from.read(into: $0) }
                        switch result {
                        case .bytes(let n):
                            s.end = n
                        case .wouldBlock:
                            from.armRead()
                            return
                        case .hangUp, .failed:
                            s.stopped = true
                        }
                    }
                }
            }
        }
    }

    /// The delegate of one link: readable drives the direction out of it, writable the one into it.
    final class Endpoint: SerialLinkDelegate {
        let outOf: Direction
        let into: Direction
        init(outOf: Direction, into: Direction) {
            self.outOf = outOf
            self.into = into
        }
        func linkIsReadable(_ link: any SerialLink) { outOf.pump() }
        func linkIsWritable(_ link: any SerialLink) { into.pump() }
    }

    let forward: Direction
    let backward: Direction

    /// Starts copying between `a` and `b` (it becomes both links' delegate).
    init(_ a: any SerialLink, _ b: any SerialLink) {
        forward = Direction(from: a, to: b)
        backward = Direction(from: b, to: a)
        a.setDelegate(Endpoint(outOf: forward, into: backward))
        b.setDelegate(Endpoint(outOf: backward, into: forward))
        forward.pump()
        backward.pump()
    }
}
