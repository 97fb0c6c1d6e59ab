import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Blocking work for the tests that drive the built `gentcp`, kept off the cooperative pool.
///
/// The pool has one thread per core (two on a small CI machine). A test that blocks one of them
/// in `read(2)`, `FileHandle.readData` or `Process.waitUntilExit` starves every other task,
/// GenTCP's own processes among them, and under load a wall-clock deadline then expires for
/// reasons that have nothing to do with what is tested. So every blocking read or wait runs on a
/// thread of its own and the test awaits its result; every wait ends on an event (a marker seen,
/// end of file, the process exiting) and has a limit only for the case where the event never
/// comes, generous enough that load cannot reach it.
enum OffPool {
    /// How long a read waits for its marker before giving up: for a program that never answers,
    /// not a measure of anything (starting an instrumented `gentcp` on a loaded machine can take
    /// many seconds).
    static let readLimit: Double = 120

    /// Runs `body` on a new thread and returns its result.
    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in
            let thread = Thread { c.resume(returning: body()) }
            thread.start()
        }
    }

    /// Reads `fd` on a thread of its own, waiting with poll(2), until `done` holds for what was
    /// read, end of file (or a read error, such as EIO when a pty's other side went away), or
    /// `limit` seconds. Works for blocking and non-blocking descriptors.
    static func read(_ fd: Int32, limit: Double = readLimit,
                     until done: @escaping @Sendable ([UInt8]) -> Bool) async -> [UInt8] {
        await run {
            var got: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            let deadline = ContinuousClock.now + .milliseconds(Int(limit * 1000))
            while !done(got) {
                let left = deadline - ContinuousClock.now
                if left <= .zero { break }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, Int32(min(left.components.seconds * 1000 + 1, Int64(Int32.max))))
                if ready < 0 && errno == EINTR { continue }
                if ready <= 0 { continue }   // the limit is checked at the top
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    got += buffer[0..<n]
                } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                    continue
                } else {
                    break   // end of file, or the descriptor failed
                }
            }
            return got
        }
    }

    /// Reads until what came contains `marker` (see ``read(_:limit:until:)``).
    static func read(_ fd: Int32, untilText marker: String, limit: Double = readLimit) async -> [UInt8] {
        let bytes = Array(marker.utf8)
        return await read(fd, limit: limit) { got in
            got.count >= bytes.count && got.indices.dropLast(bytes.count - 1).contains { i in
                got[i..<(i + bytes.count)].elementsEqual(bytes)
            }
        }
    }

    /// Reads exactly one line (up to and without its newline), a byte at a time so that nothing
    /// after it is taken from the descriptor; nil at end of file or after `limit` seconds.
    static func readLine(_ fd: Int32, limit: Double = readLimit) async -> String? {
        await run {
            var line: [UInt8] = []
            var byte: UInt8 = 0
            let deadline = ContinuousClock.now + .milliseconds(Int(limit * 1000))
            while ContinuousClock.now < deadline {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&p, 1, 1000)
                if ready <= 0 { continue }
                let n = Glibc.read(fd, &byte, 1)
                if n == 1 {
                    if byte == 10 { return String(decoding: line, as: UTF8.self) }
                    line.append(byte)
                } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                    continue
                } else {
                    return nil
                }
            }
            return nil
        }
    }
}

/// A started child process whose exit is awaited through its termination handler (an event,
/// never a poll or a blocked thread).
/// Ignores SIGPIPE in the test process, once: a write to a child's stdin after the child exited
/// (or to a raw socket whose peer reset) must be an EPIPE error, not the end of the whole test
/// run (signal 13 ended a loaded run before this).
let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

final class ChildExit: Sendable {
    private struct State {
        var pid: Int32 = 0
        var status: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }
    private let state = Mutex(State())
    let name: String

    /// Starts `child` with a termination handler installed.
    init(starting child: Foundation.Process) throws {
        _ = ignoreBrokenPipes
        name = child.executableURL?.lastPathComponent ?? "child"
        child.terminationHandler = { [self] p in
            let status = p.terminationStatus
            let waiters = state.withLock { s in
                s.status = status
                defer { s.waiters = [] }
                return s.waiters
            }
            for w in waiters { w.resume(returning: status) }
        }
        try child.run()
        let pid = child.processIdentifier
        state.withLock { $0.pid = pid }
    }

    /// True once the child has exited.
    var hasExited: Bool { state.withLock { $0.status != nil } }

    /// Sends `signal` unless the child has already exited (checked under the lock that the
    /// termination handler takes, so a finished child's reused pid is never signalled after
    /// its handler ran).
    func signal(_ signal: Int32) {
        state.withLock { s in
            if s.status == nil && s.pid > 0 { _ = kill(s.pid, signal) }
        }
    }

    /// The exit status, once the child has exited.
    var status: Int32 {
        get async {
            await withCheckedContinuation { (c: CheckedContinuation<Int32, Never>) in
                let done: Int32? = state.withLock { s in
                    if let status = s.status { return status }
                    s.waiters.append(c)
                    return nil
                }
                if let done { c.resume(returning: done) }
            }
        }
    }

    /// The exit status; when the child is still running after `limit` seconds, records an issue
    /// and kills it (the limit is for a hung program, not a measure).
    func wait(limit: Double) async -> Int32 {
        let timer = DispatchWorkItem { [self] in
            if !hasExited {
                Issue.record("\(name) did not exit within \(limit) s; killing it")
                signal(SIGKILL)
            }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: timer)
        let status = await status
        timer.cancel()
        return status
    }
}
