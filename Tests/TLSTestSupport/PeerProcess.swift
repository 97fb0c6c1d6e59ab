import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why a peer program failed the test: it ended, printed something unexpected, or said nothing
/// for longer than the (generous) limit.
public struct PeerProcessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A helper program run as a test's peer (`openssl s_server`, the OTP ssl peer), talked to
/// through its stdin and read line by line from its stdout and stderr.
///
/// A thread of its own reads the output, so waiting for a line never holds one of the
/// cooperative pool's threads; waits are `async`. Every wait has a limit (default 120 s) only so
/// that a peer that never answers fails the test instead of hanging it: no assertion depends on
/// it. The program is killed when this object goes away.
public final class PeerProcess: @unchecked Sendable {
    /// What the peer is, in messages (`OTP ssl server`, `s_server`).
    public let name: String
    private let process = Foundation.Process()
    private let input = Pipe()
    private let output = Pipe()
    private let lock = NSLock()
    private var lines: [String] = []
    /// The first line ``nextLine(timeout:)`` has not returned yet.
    private var nextIndex = 0
    private var ended = false
    private var waiters: [Int: Waiter] = [:]
    private var waiterCount = 0

    private struct Waiter {
        /// Returns the line the waiter wants, or nil to keep waiting; may consume lines.
        let take: (PeerProcess) -> String?
        let continuation: CheckedContinuation<String?, Never>
    }

    /// Starts `arguments` through `/usr/bin/env` (the first is the program, found on PATH).
    public init(_ arguments: [String], name: String) throws {
        // A write to a peer that went away is EPIPE, never the end of the test run.
        signal(SIGPIPE, SIG_IGN)
        self.name = name
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let handle = output.fileHandleForReading
        // Holds the peer weakly: a test that drops it (a failure skipped its cleanup) kills the
        // program (deinit), which ends this thread's read.
        let thread = Thread { [weak self] in
            var partial = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                partial.append(chunk)
                var complete: [String] = []
                while let newline = partial.firstIndex(of: 0x0A) {
                    complete.append(String(decoding: partial[partial.startIndex..<newline], as: UTF8.self))
                    partial.removeSubrange(partial.startIndex...newline)
                }
                guard let peer = self else { return }
                if !complete.isEmpty { peer.append(complete, end: false) }
            }
            self?.append(partial.isEmpty ? [] : [String(decoding: partial, as: UTF8.self)], end: true)
        }
        thread.start()
    }

    private func append(_ new: [String], end: Bool) {
        var ready: [(CheckedContinuation<String?, Never>, String?)] = []
        lock.lock()
        lines += new
        if end { ended = true }
        for (id, waiter) in waiters {
            if let line = waiter.take(self) {
                ready.append((waiter.continuation, line))
                waiters[id] = nil
            } else if ended {
                ready.append((waiter.continuation, nil))
                waiters[id] = nil
            }
        }
        lock.unlock()
        for (continuation, line) in ready { continuation.resume(returning: line) }
    }

    /// Waits until `take` (called under the lock, on every new line) returns a line.
    private func wait(_ what: String, timeout: Duration, _ take: @escaping (PeerProcess) -> String?) async throws -> String {
        let id: Int = lock.withLock {
            waiterCount += 1
            return waiterCount
        }
        let line = await withCheckedContinuation { (c: CheckedContinuation<String?, Never>) in
            lock.lock()
            if let line = take(self) {
                lock.unlock()
                c.resume(returning: line)
                return
            }
            if ended {
                lock.unlock()
                c.resume(returning: nil)
                return
            }
            waiters[id] = Waiter(take: take, continuation: c)
            lock.unlock()
            let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [weak self] in
                guard let self else { return }
                let waiter: Waiter? = self.lock.withLock {
                    defer { self.waiters[id] = nil }
                    return self.waiters[id]
                }
                waiter?.continuation.resume(returning: nil)
            }
        }
        guard let line else {
            let state = lock.withLock { ended ? "it ended" : "nothing within \(timeout)" }
            throw PeerProcessError("\(name): waited for \(what), \(state); its output:\n\(transcript)")
        }
        return line
    }

    /// The next line the peer printed that this call has not returned before.
    public func nextLine(timeout: Duration = .seconds(120)) async throws -> String {
        try await wait("its next line", timeout: timeout) { p in
            guard p.nextIndex < p.lines.count else { return nil }
            defer { p.nextIndex += 1 }
            return p.lines[p.nextIndex]
        }
    }

    /// The first line (of everything printed so far or later) that contains `marker`.
    @discardableResult
    public func line(containing marker: String, timeout: Duration = .seconds(120)) async throws -> String {
        try await wait("a line with \"\(marker)\"", timeout: timeout) { p in
            p.lines.first { $0.contains(marker) }
        }
    }

    /// Waits until the peer closed its output (it exited); returns everything it printed.
    public func outputToEnd(timeout: Duration = .seconds(120)) async throws -> String {
        _ = try await wait("its end", timeout: timeout) { p in p.ended ? "" : nil }
        return transcript
    }

    /// Types `text` on the peer's stdin.
    public func type(_ text: String) {
        try? input.fileHandleForWriting.write(contentsOf: Data(text.utf8))
    }

    /// Closes the peer's stdin (its end of input).
    public func closeInput() {
        try? input.fileHandleForWriting.close()
    }

    /// Everything the peer printed so far.
    public var transcript: String {
        lock.withLock { lines.joined(separator: "\n") }
    }

    /// Kills the peer (SIGKILL) if it still runs.
    public func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }

    deinit { kill() }
}

/// A program on PATH, or nil.
public func executableOnPath(_ name: String) -> String? {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// The package root (Tests/TLSTestSupport/<this file> → the root).
public let packageRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path
