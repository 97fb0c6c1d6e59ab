import CGenTCPShims
import GenTCPModem
import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPAT
import GenTCPSim
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// A scripted hostile module: byte scripts played on the far end of a serial line against the at
// driver, on a pty (real clock, a dedicated thread) or on a MemoryLink pair (virtual clock, a
// process of the simulation).
//
// A script is a list of steps: wait for a command (`expect`), answer commands from a table
// (`respond`), send bytes, pause, hang up, go silent. The steps run in a sans-I/O machine
// (``ModuleMachine``); ``PTYModuleRunner`` and ``MemoryModuleRunner`` move its bytes. Every
// wait has a limit; a command nobody expected fails the script with a message naming it, and
// the report (``ModuleReport``) keeps every command line the driver sent, with its time.

// MARK: Steps and scripts

/// Which command lines a step takes.
struct CommandMatch: Sendable, CustomStringConvertible {
    let text: String
    let exact: Bool

    /// Lines that start with `text`.
    static func prefix(_ text: String) -> CommandMatch { CommandMatch(text: text, exact: false) }
    /// The line `text` and nothing else.
    static func exact(_ text: String) -> CommandMatch { CommandMatch(text: text, exact: true) }

    func matches(_ line: String) -> Bool { exact ? line == text : line.hasPrefix(text) }

    var description: String { exact ? "\"\(text)\"" : "\"\(text)...\"" }
}

/// One step of a module script.
enum ModuleStep: Sendable, CustomStringConvertible {
    /// Wait up to `within` ms for the next command line, which must match; `then` turns the
    /// line into the steps that run next (an answer, a payload to consume...).
    case expect(CommandMatch, within: UInt32, then: (@Sendable (String) -> [ModuleStep])?)
    /// Answer command lines with `answer` for as long as it knows them; the first line it does
    /// not know (nil) ends the step and goes to the next one (or, when no step follows, fails
    /// the script as unexpected). With `idleLimit`, a pause of more than that many ms between
    /// commands fails the script.
    case respond(String, idleLimit: UInt32?, answer: @Sendable (String) -> [ModuleStep]?)
    /// Take exactly `count` raw bytes (a `CIPSEND` payload), within `within` ms.
    case consume(Int, within: UInt32, into: ByteSink?)
    /// Write bytes to the driver.
    case send([UInt8])
    /// Do nothing for this many ms (what the driver sends meanwhile waits).
    case pause(UInt32)
    /// Close the module's end of the line.
    case hangUp
    /// Answer nothing, ever again; keep reading (and recording) what the driver sends.
    case silence
    /// Run `body` when the script gets here (to change the module's state: a restart turns echo
    /// back on); the steps it returns run next.
    case perform(String, @Sendable () -> [ModuleStep])

    var description: String {
        switch self {
        case .expect(let m, let within, _): "expect \(m) within \(within) ms"
        case .respond(let name, _, _): "respond: \(name)"
        case .consume(let n, _, _): "consume \(n) payload bytes"
        case .send(let bytes): "send \(ModuleReport.show(bytes, limit: 48))"
        case .pause(let ms): "pause \(ms) ms"
        case .hangUp: "hang up"
        case .silence: "silence"
        case .perform(let name, _): name
        }
    }
}

/// Collects bytes a script consumed (payloads the driver sent).
final class ByteSink: Sendable {
    private let state = Mutex<[UInt8]>([])
    func append(_ bytes: [UInt8]) { state.withLock { $0 += bytes } }
    var bytes: [UInt8] { state.withLock { $0 } }
}

/// A module script: steps, plus the command terminator the driver uses (CR-LF on ESP-AT, CR on
/// SIMCom and Quectel) and an optional standing answer for harmless queries that may come while
/// an `expect` waits.
struct ModuleScript: Sendable {
    var steps: [ModuleStep] = []
    /// How the driver ends a command line.
    var terminator: [UInt8]
    /// Consulted for a line an `expect` does not match, before calling it unexpected.
    var standing: (@Sendable (String) -> [ModuleStep]?)?

    init(terminator: [UInt8] = [13, 10], standing: (@Sendable (String) -> [ModuleStep]?)? = nil) {
        self.terminator = terminator
        self.standing = standing
    }

    /// Waits for a command starting with `prefix`; `then` gets the whole line.
    mutating func expect(_ prefix: String, within: UInt32 = 10_000,
                         then: (@Sendable (String) -> [ModuleStep])? = nil) {
        steps.append(.expect(.prefix(prefix), within: within, then: then))
    }

    /// Waits for exactly the command `line`.
    mutating func expectExact(_ line: String, within: UInt32 = 10_000,
                              then: (@Sendable (String) -> [ModuleStep])? = nil) {
        steps.append(.expect(.exact(line), within: within, then: then))
    }

    mutating func send(_ bytes: [UInt8]) { steps.append(.send(bytes)) }
    mutating func send(_ text: String) { steps.append(.send(Array(text.utf8))) }
    /// `\r\n<text>\r\n`.
    mutating func sendLine(_ text: String) { steps.append(.send(Array("\r\n\(text)\r\n".utf8))) }
    mutating func pause(_ milliseconds: UInt32) { steps.append(.pause(milliseconds)) }
    mutating func hangUp() { steps.append(.hangUp) }
    mutating func silence() { steps.append(.silence) }
    mutating func consume(_ count: Int, within: UInt32 = 10_000, into sink: ByteSink? = nil) {
        steps.append(.consume(count, within: within, into: sink))
    }
    mutating func respond(_ name: String, idleLimit: UInt32? = nil,
                          answer: @escaping @Sendable (String) -> [ModuleStep]?) {
        steps.append(.respond(name, idleLimit: idleLimit, answer: answer))
    }
    mutating func append(_ more: [ModuleStep]) { steps += more }
}

/// The last integer of a command line (`AT+CIPRECVDATA=0,1460` -> 1460), or nil.
func commandLastInteger(_ line: String) -> Int? {
    let digits = line.reversed().prefix { $0.isASCII && $0.isNumber }
    return digits.isEmpty ? nil : Int(String(digits.reversed()))
}

// MARK: The report

/// What a script saw and did.
struct ModuleReport: Sendable, CustomStringConvertible {
    struct Command: Sendable {
        /// Milliseconds since the script started (on the runner's clock).
        var at: UInt64
        var line: String
        /// Whether a step took it (false: read during silence, after the end or after a failure).
        var handled: Bool
    }

    /// Every command line the driver sent, in order.
    var commands: [Command] = []
    /// The first thing that went against the script: an unexpected command, a limit passed.
    var failure: String?
    /// Every step ran.
    var completed = false
    /// The step the script was in when it stopped, if it had not completed.
    var pendingStep: String?
    /// The module hung up (a `hangUp` step).
    var hungUp = false
    /// The driver's end closed (the driver stopped or closed its link).
    var peerClosed = false
    /// Bytes written to the driver.
    var bytesSent = 0

    /// The command lines only.
    var lines: [String] { commands.map(\.line) }

    var description: String {
        var text = "module script: " + (failure.map { "FAILED: \($0)" } ?? (completed ? "completed" : "incomplete"))
        if let pendingStep { text += "; stopped in step: \(pendingStep)" }
        if hungUp { text += "; module hung up" }
        if peerClosed { text += "; driver closed its end" }
        text += "; \(bytesSent) bytes sent\ncommands from the driver:"
        for c in commands {
            text += "\n  \(c.at) ms  \(c.line)\(c.handled ? "" : "   (unanswered)")"
        }
        return text
    }

    /// Printable bytes, escapes for the rest, cut at `limit` characters.
    /// Writes `text` and a newline to stderr at once (stdout is buffered apart from the test
    /// library's own output).
    static func printToStderr(_ text: String) {
        var bytes = Array((text + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { break }
            offset += n
        }
        bytes.removeAll()
    }

    static func show(_ bytes: [UInt8], limit: Int = 120) -> String {
        var out = ""
        for b in bytes {
            if out.count >= limit {
                out += "...(\(bytes.count) bytes)"
                break
            }
            switch b {
            case 13: out += "\\r"
            case 10: out += "\\n"
            case 0x20...0x7E: out += String(UnicodeScalar(b))
            default: out += "\\x" + String(b, radix: 16)
            }
        }
        return out
    }
}

// MARK: The machine

/// What a runner does next for the machine.
enum ModuleAction: Equatable {
    /// Write these bytes to the driver (all of them, paced if the runner paces).
    case write([UInt8])
    /// Read what comes until the deadline (runner's clock, ns), or forever with nil; then ask again.
    case wait(until: UInt64?)
    /// Close the module's end.
    case hangUp
    /// Nothing more will happen: the line is gone.
    case stop
}

/// Runs a script: bytes in, actions out, no I/O and no clock of its own.
struct ModuleMachine {
    struct Entry {
        var step: ModuleStep
        /// When the step started waiting (for its limit).
        var startedAt: UInt64?
    }

    private var entries: [Entry]
    private let standing: (@Sendable (String) -> [ModuleStep]?)?
    private let terminator: [UInt8]
    private var input: [UInt8] = []
    /// Bytes taken from the front of `input` so far, and when each received chunk ended
    /// (absolute offsets), so a command line gets the time its last byte arrived.
    private var consumed = 0
    private var arrivals: [(end: Int, at: UInt64)] = []
    private var writeCut = false
    private let origin: UInt64
    private var peerGone = false
    private var closed = false
    private(set) var report = ModuleReport()

    init(script: ModuleScript, now: UInt64) {
        entries = script.steps.map { Entry(step: $0) }
        standing = script.standing
        terminator = script.terminator
        origin = now
    }

    /// Bytes the driver wrote.
    mutating func received(_ bytes: some Collection<UInt8>, now: UInt64) {
        input += bytes
        arrivals.append((end: consumed + input.count, at: now))
    }

    /// A write was cut short by a stop: the report says so.
    /// (An answer given by a trailing open-ended `respond` does not count: the script had run.)
    mutating func interruptedWrite(written: Int, of total: Int) {
        if reachedEnd { return }
        writeCut = true
        if report.pendingStep == nil { report.pendingStep = "a write (\(written) of \(total) bytes written)" }
    }

    /// The driver's end is gone (its link closed or failed).
    mutating func peerHungUp() {
        peerGone = true
        report.peerClosed = true
    }

    /// Counts bytes a runner wrote.
    mutating func wrote(_ count: Int) { report.bytesSent += count }

    /// The final report. The script completed when it reached its last step without a failure
    /// (a trailing open-ended `respond` counts as reached once it runs).
    mutating func finish() -> ModuleReport {
        // Lines still buffered were sent by the driver too.
        recordRemainingLines(now: nil)
        var r = report
        r.completed = r.failure == nil && reachedEnd && !writeCut
        if !reachedEnd, r.pendingStep == nil { r.pendingStep = entries.first.map { "\($0.step)" } }
        return r
    }

    /// Every step ran, or only a trailing open-ended `respond` is left.
    private var reachedEnd: Bool {
        if entries.isEmpty { return true }
        if entries.count == 1, case .respond(_, nil, _) = entries[0].step { return true }
        return false
    }

    private mutating func fail(_ message: String) {
        if report.failure == nil {
            report.failure = message
            report.pendingStep = entries.first.map { "\($0.step)" }
        }
        entries.removeAll()
    }

    private mutating func advance() {
        entries.removeFirst()
    }

    private mutating func startedAt(_ now: UInt64) -> UInt64 {
        if let t = entries[0].startedAt { return t }
        entries[0].startedAt = now
        return now
    }

    private func milliseconds(_ now: UInt64) -> UInt64 { now >= origin ? (now - origin) / 1_000_000 : 0 }

    /// The next complete command line in the input: its text and how many bytes it spans.
    private func peekLine() -> (String, Int)? {
        var start = 0
        while start < input.count, input[start] == 13 || input[start] == 10 { start += 1 }
        guard start < input.count else { return nil }
        var i = start
        while i < input.count {
            if input[i] == terminator[0] || input[i] == 10 {
                var end = i + 1
                if input[i] == 13, terminator.count > 1 {
                    // CR-LF: wait for the LF.
                    guard end < input.count else { return nil }
                    if input[end] == 10 { end += 1 }
                }
                return (String(decoding: input[start..<i], as: UTF8.self), end)
            }
            i += 1
        }
        return nil
    }

    /// Removes `count` bytes from the front of the input; returns when the last of them arrived.
    private mutating func removeInput(_ count: Int) -> UInt64? {
        input.removeFirst(count)
        consumed += count
        let at = arrivals.first { $0.end >= consumed }?.at
        arrivals.removeAll { $0.end <= consumed }
        return at
    }

    private mutating func takeLine(now: UInt64, handled: Bool) -> String? {
        guard let (line, span) = peekLine() else { return nil }
        let at = removeInput(span) ?? now
        report.commands.append(.init(at: milliseconds(at), line: line, handled: handled))
        return line
    }

    private mutating func recordRemainingLines(now: UInt64?) {
        while let (line, span) = peekLine() {
            let at = removeInput(span) ?? now ?? origin
            report.commands.append(.init(at: milliseconds(at), line: line, handled: false))
        }
    }

    /// The next action at `now` (ns on the runner's clock).
    mutating func next(now: UInt64) -> ModuleAction {
        while true {
            if closed { return .stop }
            guard let entry = entries.first else {
                // The script is over (or silenced, or failed): record, never answer.
                recordRemainingLines(now: now)
                _ = removeInput(input.count)
                return peerGone ? .stop : .wait(until: nil)
            }
            switch entry.step {
            case .send(let bytes):
                advance()
                if peerGone { continue }
                return .write(bytes)
            case .pause(let ms):
                let until = startedAt(now) + UInt64(ms) * 1_000_000
                if now < until && !peerGone { return .wait(until: until) }
                advance()
            case .hangUp:
                advance()
                closed = true
                report.hungUp = true
                return .hangUp
            case .silence:
                entries.removeAll()
            case .perform(_, let body):
                advance()
                entries.insert(contentsOf: body().map { Entry(step: $0) }, at: 0)
            case .consume(let count, let within, let sink):
                if input.count >= count {
                    sink?.append(Array(input[0..<count]))
                    _ = removeInput(count)
                    advance()
                    continue
                }
                if peerGone { return stopEarly() }
                let deadline = startedAt(now) + UInt64(within) * 1_000_000
                if now >= deadline {
                    fail("only \(input.count) of \(count) payload bytes within \(within) ms")
                    continue
                }
                return .wait(until: deadline)
            case .expect(let match, let within, let then):
                if let (line, _) = peekLine() {
                    if match.matches(line) {
                        _ = takeLine(now: now, handled: true)
                        advance()
                        if let then { entries.insert(contentsOf: then(line).map { Entry(step: $0) }, at: 0) }
                        continue
                    }
                    if let answer = standing?(line) {
                        _ = takeLine(now: now, handled: true)
                        entries.insert(contentsOf: answer.map { Entry(step: $0) }, at: 0)
                        continue
                    }
                    _ = takeLine(now: now, handled: false)
                    fail("unexpected command \"\(line)\" while expecting \(match)")
                    continue
                }
                if peerGone { return stopEarly() }
                let deadline = startedAt(now) + UInt64(within) * 1_000_000
                if now >= deadline {
                    fail("no command \(match) within \(within) ms")
                    continue
                }
                return .wait(until: deadline)
            case .respond(let name, let idleLimit, let answer):
                if let (line, _) = peekLine() {
                    guard let reply = answer(line) else {
                        if entries.count == 1 {
                            // Nothing after this step could take it.
                            _ = takeLine(now: now, handled: false)
                            fail("unexpected command \"\(line)\" (\(name) does not know it, and no step follows)")
                            continue
                        }
                        advance()  // not ours: the next step takes it
                        continue
                    }
                    _ = takeLine(now: now, handled: true)
                    entries[0].startedAt = nil
                    entries.insert(contentsOf: reply.map { Entry(step: $0) }, at: 0)
                    continue
                }
                if peerGone { return stopEarly() }
                if let idleLimit {
                    let deadline = startedAt(now) + UInt64(idleLimit) * 1_000_000
                    if now >= deadline {
                        fail("\(name): no command for \(idleLimit) ms")
                        continue
                    }
                    return .wait(until: deadline)
                }
                return .wait(until: nil)
            }
        }
    }

    /// The driver's end closed while a step still waited: the script stops there (incomplete,
    /// not failed: the test decides whether that was expected).
    private mutating func stopEarly() -> ModuleAction {
        if report.pendingStep == nil { report.pendingStep = entries.first.map { "\($0.step)" } }
        recordRemainingLines(now: nil)
        return .stop
    }
}

// MARK: Runner on a pty (real clock, its own thread)

/// Plays a script on the master of a pty from a dedicated thread; the driver opens the slave
/// path with `PTYLink`. Writes can be paced at a baud rate (a pty moves bytes as fast as the
/// kernel copies them; a real UART at 9600 baud does not).
final class PTYModuleRunner: @unchecked Sendable {
    private struct Control {
        var stopRequested = false
        var report: ModuleReport?
        var waiters: [CheckedContinuation<ModuleReport, Never>] = []
    }

    /// The slave's path, for `PTYLink(path:)`.
    let slavePath: String
    private var fd: Int32
    private let paceBaud: Int?
    private var machine: ModuleMachine
    private let control = Mutex(Control())
    /// When the simulated UART is free again (pacing).
    private var lineFreeAt: UInt64 = 0

    /// Opens a pty master (`posix_openpt`, `grantpt`, `unlockpt`) and prepares `script`; call
    /// ``start()`` once the driver's link is open on ``slavePath``.
    init(script: ModuleScript, paceBaud: Int? = nil) throws {
        // posix_openpt(3), grantpt(3), unlockpt(3) and ptsname_r(3) are in libc but not in Swift's
        // Glibc module (they need _XOPEN_SOURCE): look them up.
        typealias OneFD = @convention(c) (Int32) -> Int32
        typealias Name = @convention(c) (Int32, UnsafeMutablePointer<CChar>?, Int) -> Int32
        guard let libc = dlopen(nil, RTLD_NOW),
              let openpt = dlsym(libc, "posix_openpt").map({ unsafeBitCast($0, to: OneFD.self) }),
              let grant = dlsym(libc, "grantpt").map({ unsafeBitCast($0, to: OneFD.self) }),
              let unlock = dlsym(libc, "unlockpt").map({ unsafeBitCast($0, to: OneFD.self) }),
              let ptsname = dlsym(libc, "ptsname_r").map({ unsafeBitCast($0, to: Name.self) }) else {
            throw ModuleRunnerError("posix_openpt, grantpt, unlockpt or ptsname_r not found in libc")
        }
        let master = openpt(O_RDWR | O_NOCTTY)
        guard master >= 0 else { throw ModuleRunnerError("posix_openpt: errno \(cgentcp_errno())") }
        guard grant(master) == 0, unlock(master) == 0 else {
            let e = cgentcp_errno()
            _ = Glibc.close(master)
            throw ModuleRunnerError("grantpt/unlockpt: errno \(e)")
        }
        var name = [CChar](repeating: 0, count: 128)
        guard ptsname(master, &name, name.count) == 0 else {
            let e = cgentcp_errno()
            _ = Glibc.close(master)
            throw ModuleRunnerError("ptsname_r: errno \(e)")
        }
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        _ = fcntl(master, F_SETFD, FD_CLOEXEC)
        fd = master
        slavePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.paceBaud = paceBaud
        machine = ModuleMachine(script: script, now: cgentcp_monotonic_ns())
    }

    deinit {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Starts the script's thread.
    func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let runner = Unmanaged<PTYModuleRunner>.fromOpaque(arg!).takeRetainedValue()
            runner.run()
            return nil
        }, box)
        precondition(rc == 0, "ScriptedModule: pthread_create \(rc)")
        pthread_detach(thread)
    }

    /// Stops the script wherever it is, closes the master, and returns the report.
    func stop() async -> ModuleReport {
        control.withLock { $0.stopRequested = true }
        return await report()
    }

    /// Waits for the script's thread to end (after ``stop()`` or once the line is gone).
    func report() async -> ModuleReport {
        await withCheckedContinuation { (c: CheckedContinuation<ModuleReport, Never>) in
            let done = control.withLock { s -> ModuleReport? in
                if let r = s.report { return r }
                s.waiters.append(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }

    private var stopRequested: Bool { control.withLock { $0.stopRequested } }

    private func run() {
        loop: while !stopRequested {
            switch machine.next(now: cgentcp_monotonic_ns()) {
            case .write(let bytes):
                writeAll(bytes)
            case .wait(let deadline):
                readSome(until: deadline)
            case .hangUp:
                _ = Glibc.close(fd)
                fd = -1
            case .stop:
                break loop
            }
        }
        drainAvailable()
        let report = machine.finish()
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
        let waiters = control.withLock { s -> [CheckedContinuation<ModuleReport, Never>] in
            s.report = report
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: report) }
    }

    /// Waits up to the deadline (in slices, to notice a stop) for bytes, and feeds what comes.
    private func readSome(until deadline: UInt64?) {
        let now = cgentcp_monotonic_ns()
        var slice: UInt64 = 50_000_000
        if let deadline { slice = deadline > now ? min(slice, deadline - now) : 0 }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&p, 1, Int32((slice + 999_999) / 1_000_000))
        guard rc > 0 else { return }
        drainAvailable()
    }

    /// Reads whatever the driver has written, without waiting.
    private func drainAvailable() {
        guard fd >= 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                machine.received(buffer[0..<n], now: cgentcp_monotonic_ns())
                continue
            }
            let e = cgentcp_errno()
            if n < 0 && (e == EAGAIN || e == EINTR) { return }
            // 0 or EIO: every descriptor of the slave is closed.
            machine.peerHungUp()
            return
        }
    }

    /// Writes every byte, paced at `paceBaud` when set (10 bit times per byte).
    private func writeAll(_ bytes: [UInt8]) {
        var sent = 0
        let chunk = paceBaud.map { max(1, $0 / 1000) } ?? bytes.count
        while sent < bytes.count {
            if stopRequested {
                machine.interruptedWrite(written: sent, of: bytes.count)
                return
            }
            let n = min(chunk, bytes.count - sent)
            if paceBaud != nil {
                // Commands the driver sends meanwhile get their real time.
                drainAvailable()
                let now = cgentcp_monotonic_ns()
                if lineFreeAt < now { lineFreeAt = now }
                if lineFreeAt > now {
                    let wait = min(lineFreeAt - now, 50_000_000)
                    var ts = timespec(tv_sec: 0, tv_nsec: Int(wait))
                    _ = nanosleep(&ts, nil)
                    continue
                }
            }
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + sent, n) }
            if written > 0 {
                sent += written
                machine.wrote(written)
                if let baud = paceBaud { lineFreeAt += UInt64(written) * 10 * 1_000_000_000 / UInt64(baud) }
                continue
            }
            let e = cgentcp_errno()
            if written < 0 && (e == EAGAIN || e == EINTR) {
                // The driver is not reading: wait for room, and keep taking what it sends.
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 50)
                continue
            }
            machine.peerHungUp()
            return
        }
    }
}

struct ModuleRunnerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: Runner on a MemoryLink (virtual clock, a process of the simulation)

/// Plays a script on one end of a `MemoryLink` pair, as a process of a simulated network; the
/// line itself paces the bytes at its baud rate.
final class MemoryModuleRunner: SerialLinkDelegate, @unchecked Sendable {
    private struct Control {
        var stopRequested = false
        var waiter: CheckedContinuation<Void, Never>?
        var wakePending = false
        var report: ModuleReport?
        var reportWaiters: [CheckedContinuation<ModuleReport, Never>] = []
    }

    private let link: MemoryLink
    private let runtime: any Runtime
    private var machine: ModuleMachine
    private let control = Mutex(Control())

    /// Starts `script` on `link` (the module's end) as a process of `net`.
    init(link: MemoryLink, net: SimNetwork, script: ModuleScript) {
        self.link = link
        runtime = net.runtime
        machine = ModuleMachine(script: script, now: net.runtime.now)
        link.setDelegate(self)
        net.spawn { [self] in await run() }
    }

    func linkIsReadable(_ link: any SerialLink) { wake() }
    func linkIsWritable(_ link: any SerialLink) { wake() }

    /// Stops the script wherever it is, closes the module's end, and returns the report.
    func stop() async -> ModuleReport {
        control.withLock { $0.stopRequested = true }
        wake()
        return await withCheckedContinuation { (c: CheckedContinuation<ModuleReport, Never>) in
            let done = control.withLock { s -> ModuleReport? in
                if let r = s.report { return r }
                s.reportWaiters.append(c)
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }

    private func wake() {
        let waiter = control.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.wakePending = true
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Suspends until readiness, a stop, or the deadline.
    private func sleep(until deadline: UInt64?) async {
        var timer: TimerID?
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = control.withLock { s -> Bool in
                if s.wakePending || s.stopRequested {
                    s.wakePending = false
                    return true
                }
                s.waiter = c
                return false
            }
            if now {
                c.resume()
                return
            }
            if let deadline {
                let current = runtime.now
                timer = runtime.schedule(afterNanoseconds: deadline > current ? deadline - current : 0) { [weak self] in
                    self?.wake()
                }
            }
        }
        if let timer { runtime.cancel(timer) }
    }

    private var stopRequested: Bool { control.withLock { $0.stopRequested } }

    private func run() async {
        var open = true
        loop: while !stopRequested {
            switch machine.next(now: runtime.now) {
            case .write(let bytes):
                var sent = 0
                while sent < bytes.count {
                    if stopRequested {
                        machine.interruptedWrite(written: sent, of: bytes.count)
                        break
                    }
                    let result = link.write(Array(bytes[sent...]))
                    switch result {
                    case .bytes(let n):
                        sent += n
                        machine.wrote(n)
                    case .wouldBlock:
                        link.armWrite()
                        await sleep(until: nil)
                    case .hangUp, .failed:
                        machine.peerHungUp()
                        sent = bytes.count
                    }
                }
            case .wait(let deadline):
                var buffer = [UInt8](repeating: 0, count: 4096)
                reading: while true {
                    let result = buffer.withUnsafeMutableBytes { link.read(into: $0) }
                    switch result {
                    case .bytes(let n):
                        machine.received(buffer[0..<n], now: runtime.now)
                        // Let the machine act on these before reading more.
                        break reading
                    case .wouldBlock:
                        if let deadline, runtime.now >= deadline { break reading }
                        link.armRead()
                        await sleep(until: deadline)
                        if stopRequested { break reading }
                        if let deadline, runtime.now >= deadline {
                            continue reading  // one last look, then the machine sees the time
                        }
                    case .hangUp, .failed:
                        machine.peerHungUp()
                        break reading
                    }
                }
            case .hangUp:
                link.close()
                open = false
            case .stop:
                break loop
            }
        }
        // What the driver wrote last is part of the record.
        if open {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case .bytes(let n) = buffer.withUnsafeMutableBytes({ link.read(into: $0) }) {
                machine.received(buffer[0..<n], now: runtime.now)
            }
        }
        let report = machine.finish()
        if open { link.close() }
        let waiters = control.withLock { s -> [CheckedContinuation<ModuleReport, Never>] in
            s.report = report
            defer { s.reportWaiters = [] }
            return s.reportWaiters
        }
        for w in waiters { w.resume(returning: report) }
    }
}

// MARK: The module's side of each dialect

/// Bytes a module holds for link 0, handed out by reads.
final class ReadFeed: Sendable {
    private let state: Mutex<(data: [UInt8], offset: Int)>

    init(_ data: [UInt8]) { state = Mutex((data, 0)) }

    /// Bytes handed out so far.
    var offset: Int { state.withLock { $0.offset } }
    /// Bytes the module still holds.
    var left: Int { state.withLock { $0.data.count - $0.offset } }
    var total: Int { state.withLock { $0.data.count } }

    /// More bytes arrive in the module (after those it holds).
    func append(_ bytes: [UInt8]) { state.withLock { $0.data += bytes } }

    /// Takes up to `count` bytes; returns them and what the module holds after.
    func take(_ count: Int) -> (bytes: [UInt8], left: Int) {
        state.withLock { s in
            let n = max(0, min(count, s.data.count - s.offset))
            let bytes = Array(s.data[s.offset..<(s.offset + n)])
            s.offset += n
            return (bytes, s.data.count - s.offset)
        }
    }
}

/// What a documented module of `dialect` answers: init commands, connects, data notices, reads,
/// closes and restarts, for link 0. Its answers follow the vendor formats in
/// `reference/at-modems.md` §2.1-2.3, not the driver.
final class ModuleModel: Sendable {
    struct State {
        var echo = true
        /// SIM800's `AT+CIPSTATUS` state.
        var ipState = "IP INITIAL"
    }

    let dialect: ATDialect
    /// ESP-AT's `AT version:`.
    let version: String
    /// SIM800: `AT+CIICR` answers `ERROR` (no APN, no bearer).
    let refuseBearer: Bool
    /// The bytes the module holds for link 0.
    let feed: ReadFeed
    private let state = Mutex(State())

    init(_ dialect: ATDialect, data: [UInt8] = [], version: String = "3.3.0.0", refuseBearer: Bool = false) {
        self.dialect = dialect
        self.version = version
        self.refuseBearer = refuseBearer
        feed = ReadFeed(data)
    }

    /// A script for this module: its command terminator, and harmless queries answered wherever
    /// they come.
    func script() -> ModuleScript {
        ModuleScript(terminator: dialect == .espAT ? [13, 10] : [13], standing: { [self] line in standingAnswer(line) })
    }

    private func text(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// `OK` with the module's echo in front while echo is on.
    private func answer(_ line: String, _ body: String) -> [ModuleStep] {
        let echo = state.withLock { $0.echo }
        let echoed = echo ? line + (dialect == .espAT ? "\r\n" : "\r") : ""
        return [.send(text(echoed + body))]
    }

    // MARK: Init

    /// The answer to an initialisation command, or nil for one this module does not take here.
    func initAnswer(_ line: String) -> [ModuleStep]? {
        if line == "ATE0" {
            let steps = answer(line, "\r\nOK\r\n")
            state.withLock { $0.echo = false }
            return steps
        }
        if line == "ATE1" {
            state.withLock { $0.echo = true }
            return answer(line, "\r\nOK\r\n")
        }
        if line == "AT" { return answer(line, "\r\nOK\r\n") }
        let common = ["AT+CMEE=", "AT+IFC=", "AT+CSCLK="]
        if common.contains(where: line.hasPrefix) { return answer(line, "\r\nOK\r\n") }
        switch dialect {
        case .espAT: return espInit(line)
        case .sim800: return simInit(line)
        case .bg96: return bg96Init(line)
        }
    }

    private func espInit(_ line: String) -> [ModuleStep]? {
        switch line {
        case "AT+GMR":
            return answer(line, "AT version:\(version)(s-4b2a3d4 - ESP32 - Jun  6 2024 06:10:01)\r\n"
                + "SDK version:v5.0.6\r\ncompile time(2e2da6d):Jun  6 2024 06:25:06\r\n"
                + "Bin version:v\(version)(WROOM-32)\r\n\r\nOK\r\n")
        case "AT+CIPMUX=1", "AT+CIPRECVMODE=1", "AT+CIPRECVTYPE=5,1", "AT+CIPRECVTYPE=1", "AT+CIPRECVTYPE=0,1",
             "AT+CIPDINFO=0", "AT+CWMODE=1", "AT+CIPSERVER=0", "AT+SYSLOG=0", "AT+SYSLOG=1":
            return answer(line, "\r\nOK\r\n")
        case "AT+CIPMUX?": return answer(line, "+CIPMUX:1\r\n\r\nOK\r\n")
        case "AT+CIPRECVMODE?": return answer(line, "+CIPRECVMODE:1\r\n\r\nOK\r\n")
        case "AT+CIPRECVTYPE?": return answer(line, "+CIPRECVTYPE:0,1\r\n\r\nOK\r\n")
        case "AT+CIPDINFO?": return answer(line, "+CIPDINFO:0\r\n\r\nOK\r\n")
        case "AT+CIFSR":
            return answer(line, "+CIFSR:STAIP,\"192.168.4.2\"\r\n+CIFSR:STAMAC,\"24:0a:c4:00:00:01\"\r\n\r\nOK\r\n")
        case "AT+CWSTATE?": return answer(line, "+CWSTATE:2,\"hostile\"\r\n\r\nOK\r\n")
        case "AT+CWJAP?":
            return answer(line, "+CWJAP:\"hostile\",\"aa:bb:cc:dd:ee:ff\",6,-50,0,0,0,0,0\r\n\r\nOK\r\n")
        case "AT+CWMODE?": return answer(line, "+CWMODE:1\r\n\r\nOK\r\n")
        case "AT+SYSMSG?": return answer(line, "+SYSMSG:0\r\n\r\nOK\r\n")
        case "AT+UART_CUR?": return answer(line, "+UART_CUR:115200,8,1,0,0\r\n\r\nOK\r\n")
        default:
            if line.hasPrefix("AT+SYSMSG=") { return answer(line, "\r\nOK\r\n") }
            return nil
        }
    }

    private func simInit(_ line: String) -> [ModuleStep]? {
        switch line {
        case "ATI": return answer(line, "\r\nSIM800 R14.18\r\n\r\nOK\r\n")
        case "AT+CPIN?": return answer(line, "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        case "AT+CSQ": return answer(line, "\r\n+CSQ: 21,0\r\n\r\nOK\r\n")
        case "AT+CREG?": return answer(line, "\r\n+CREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CGREG?": return answer(line, "\r\n+CGREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CGATT?": return answer(line, "\r\n+CGATT: 1\r\n\r\nOK\r\n")
        case "AT+CFUN?": return answer(line, "\r\n+CFUN: 1\r\n\r\nOK\r\n")
        case "AT+CIPMUX?": return answer(line, "\r\n+CIPMUX: 1\r\n\r\nOK\r\n")
        case "AT+CIPRXGET?": return answer(line, "\r\n+CIPRXGET: 1\r\n\r\nOK\r\n")
        case "AT+CGATT=1", "AT+CIPMUX=1", "AT+CIPRXGET=1", "AT+CIPQSEND=0", "AT+CIPQSEND=1", "AT+CIPHEAD=0",
             "AT+CIPHEAD=1", "AT+CIPSPRT=0", "AT+CIPSPRT=1", "AT+CIPSRIP=0":
            return answer(line, "\r\nOK\r\n")
        case "AT+CSTT?":
            return answer(line, "\r\n+CSTT: \"CMNET\",\"\",\"\"\r\n\r\nOK\r\n")
        case "AT+CIPSTATUS":
            let s = state.withLock { $0.ipState }
            return answer(line, "\r\nOK\r\n\r\nSTATE: \(s)\r\n")
        case "AT+CIPSHUT":
            state.withLock { $0.ipState = "IP INITIAL" }
            return answer(line, "\r\nSHUT OK\r\n")
        case "AT+CIICR":
            if refuseBearer { return answer(line, "\r\nERROR\r\n") }
            state.withLock { $0.ipState = "IP GPRSACT" }
            return answer(line, "\r\nOK\r\n")
        case "AT+CIFSR":
            if state.withLock({ $0.ipState }) != "IP GPRSACT" && state.withLock({ $0.ipState }) != "IP STATUS" {
                return answer(line, "\r\nERROR\r\n")
            }
            state.withLock { $0.ipState = "IP STATUS" }
            return answer(line, "\r\n10.1.2.3\r\n")
        default:
            if line.hasPrefix("AT+CSTT") {
                state.withLock { $0.ipState = "IP START" }
                return answer(line, "\r\nOK\r\n")
            }
            if line.hasPrefix("AT+CDNSCFG=") { return answer(line, "\r\nOK\r\n") }
            return nil
        }
    }

    private func bg96Init(_ line: String) -> [ModuleStep]? {
        switch line {
        case "ATI": return answer(line, "\r\nQuectel\r\nBG96\r\nRevision: BG96MAR02A07M1G\r\n\r\nOK\r\n")
        case "AT+CPIN?": return answer(line, "\r\n+CPIN: READY\r\n\r\nOK\r\n")
        case "AT+CSQ": return answer(line, "\r\n+CSQ: 21,99\r\n\r\nOK\r\n")
        case "AT+CREG?": return answer(line, "\r\n+CREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CGREG?": return answer(line, "\r\n+CGREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CEREG?": return answer(line, "\r\n+CEREG: 0,1\r\n\r\nOK\r\n")
        case "AT+CGATT?": return answer(line, "\r\n+CGATT: 1\r\n\r\nOK\r\n")
        case "AT+CFUN?": return answer(line, "\r\n+CFUN: 1\r\n\r\nOK\r\n")
        case "AT+QIACT?": return answer(line, "\r\n+QIACT: 1,1,1,\"10.1.2.3\"\r\n\r\nOK\r\n")
        case "AT+QICSGP=1": return answer(line, "\r\n+QICSGP: 1,\"internet\",\"\",\"\",0\r\n\r\nOK\r\n")
        case "AT+QIACT=1", "AT+QIDEACT=1", "AT+CGATT=1": return answer(line, "\r\nOK\r\n")
        case "AT+QISTATE?", "AT+QISTATE=0,1": return answer(line, "\r\nOK\r\n")
        default:
            if line.hasPrefix("AT+QICSGP=1,") || line.hasPrefix("AT+QURCCFG=") || line.hasPrefix("AT+QCFG=") {
                return answer(line, "\r\nOK\r\n")
            }
            return nil
        }
    }

    /// Commands a driver may send at any time: probes, versions, status, how much data the
    /// module holds, and asking again for the passive receive mode it already has.
    func standingAnswer(_ line: String) -> [ModuleStep]? {
        let passiveAgain = ["AT+CIPRECVMODE=1", "AT+CIPRECVTYPE=5,1", "AT+CIPRECVTYPE=1", "AT+CIPRECVTYPE=0,1",
                            "AT+CIPRXGET=1"]
        if passiveAgain.contains(line) { return answer(line, "\r\nOK\r\n") }
        if line == "AT" || line == "ATI" || line == "AT+GMR" || line == "AT+CIFSR" || line == "AT+CIPSTATUS"
            || line.hasSuffix("?") {
            if line == "AT+CIPRECVLEN?" {
                return [.send(text("+CIPRECVLEN:\(feed.left),-1,-1,-1,-1\r\n\r\nOK\r\n"))]
            }
            return initAnswer(line)
        }
        if line == "AT+CIPRXGET=4,0" { return [.send(text("\r\n+CIPRXGET: 4,0,\(feed.left)\r\n\r\nOK\r\n"))] }
        if line == "AT+QIRD=0,0" {
            return [.send(text("\r\n+QIRD: \(feed.total),\(feed.offset),\(feed.left)\r\n\r\nOK\r\n"))]
        }
        return nil
    }

    // MARK: Links

    /// How the driver's connect on link 0 starts.
    var connectPrefix: String {
        switch dialect {
        case .espAT, .sim800: "AT+CIPSTART=0,"
        case .bg96: "AT+QIOPEN=1,0,"
        }
    }

    /// A successful connect of link 0.
    var connectAnswer: [UInt8] {
        switch dialect {
        case .espAT: text("0,CONNECT\r\n\r\nOK\r\n")
        case .sim800: text("\r\nOK\r\n\r\n0, CONNECT OK\r\n")
        case .bg96: text("\r\nOK\r\n\r\n+QIOPEN: 0,0\r\n")
        }
    }

    /// Data waits in the module for link 0 (the passive-mode notice; ESP-AT gives the total).
    func dataNotice(total: Int) -> [UInt8] {
        switch dialect {
        case .espAT: text("\r\n+IPD,0,\(total)\r\n")
        case .sim800: text("\r\n+CIPRXGET: 1,0\r\n")
        case .bg96: text("\r\n+QIURC: \"recv\",0\r\n")
        }
    }

    /// How the driver's read of link 0 starts.
    var readPrefix: String {
        switch dialect {
        case .espAT: "AT+CIPRECVDATA=0,"
        case .sim800: "AT+CIPRXGET=2,0,"
        case .bg96: "AT+QIRD=0,"
        }
    }

    /// The answer to a read that delivers `bytes`, `left` bytes staying in the module.
    func readAnswer(_ bytes: [UInt8], left: Int) -> [UInt8] {
        switch dialect {
        case .espAT:
            if bytes.isEmpty { return text("\r\nERROR\r\n") }
            return text("+CIPRECVDATA:\(bytes.count),") + bytes + text("\r\nOK\r\n")
        case .sim800:
            return text("\r\n+CIPRXGET: 2,0,\(bytes.count),\(left)\r\n") + bytes + text("\r\nOK\r\n")
        case .bg96:
            return text("\r\n+QIRD: \(bytes.count)\r\n") + bytes + text("\r\n\r\nOK\r\n")
        }
    }

    /// The peer closed link 0.
    var closedNotice: [UInt8] {
        switch dialect {
        case .espAT: text("0,CLOSED\r\n")
        case .sim800: text("\r\n0, CLOSED\r\n")
        case .bg96: text("\r\n+QIURC: \"closed\",0\r\n")
        }
    }

    /// The host closing link 0 after the peer did: what the module answers.
    func closeAnswer(_ line: String) -> [ModuleStep]? {
        switch dialect {
        case .espAT: line == "AT+CIPCLOSE=0" ? [.send(text("\r\nERROR\r\n"))] : nil
        case .sim800: line == "AT+CIPCLOSE=0" || line == "AT+CIPCLOSE=0,1" ? [.send(text("\r\nERROR\r\n"))] : nil
        case .bg96: line.hasPrefix("AT+QICLOSE=0") ? [.send(text("\r\nOK\r\n"))] : nil
        }
    }

    /// The boot banner after a restart; echo is on again and the bearer is down.
    var restartBanner: [UInt8] {
        switch dialect {
        case .espAT: text("\r\nready\r\n")
        case .sim800: text("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n")
        case .bg96: text("\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\nAPP RDY\r\n")
        }
    }

    /// The steps that serve reads of link 0 until `target` bytes of ``feed`` were handed out,
    /// at most `maxPerAnswer` per answer. ESP-AT announces what is left after each read (esp-at
    /// #994), so a short answer is followed by a fresh `+IPD` notice.
    /// `trailer` goes out in the same write as the last answer (a close notice that arrives
    /// with the data, say).
    func serveSteps(upTo target: Int, maxPerAnswer: Int = .max, within: UInt32 = 10_000,
                    trailer: [UInt8] = []) -> [ModuleStep] {
        guard feed.offset < target else { return trailer.isEmpty ? [] : [.send(trailer)] }
        return [.expect(.prefix(readPrefix), within: within, then: { [self] line in
            let asked = commandLastInteger(line) ?? 0
            if dialect == .bg96 && asked == 0 {
                // AT+QIRD=0,0: how much is there; then keep serving.
                return [.send(text("\r\n+QIRD: \(feed.total),\(feed.offset),\(feed.left)\r\n\r\nOK\r\n"))]
                    + serveSteps(upTo: target, maxPerAnswer: maxPerAnswer, within: within, trailer: trailer)
            }
            let (bytes, left) = feed.take(min(asked, maxPerAnswer, target - feed.offset))
            var answer = readAnswer(bytes, left: left)
            if dialect == .espAT && left > 0 { answer += dataNotice(total: left) }
            if feed.offset >= target {
                return [.send(answer + trailer)]
            }
            return [.send(answer)] + serveSteps(upTo: target, maxPerAnswer: maxPerAnswer, within: within, trailer: trailer)
        })]
    }

    /// Answers reads from ``feed`` for as long as they come (an open-ended `respond`).
    func readAnswerAnyTime(_ line: String) -> [ModuleStep]? {
        guard line.hasPrefix(readPrefix), let asked = commandLastInteger(line) else { return nil }
        if dialect == .bg96 && asked == 0 {
            return [.send(text("\r\n+QIRD: \(feed.total),\(feed.offset),\(feed.left)\r\n\r\nOK\r\n"))]
        }
        let (bytes, left) = feed.take(asked)
        return [.send(readAnswer(bytes, left: left))]
    }

    /// Echo on, bearer down: what a restart leaves.
    func restarted() {
        state.withLock { s in
            s.echo = true
            s.ipState = "IP INITIAL"
        }
    }
}

extension ModuleScript {
    /// Answers the module's usual initialisation (whatever the dialect sends of it) until a
    /// command it does not know arrives; the next step takes that one.
    mutating func answerInit(_ model: ModuleModel, idleLimit: UInt32? = nil) {
        respond("answer the usual init (\(model.dialect.description))", idleLimit: idleLimit) { model.initAnswer($0) }
    }

    /// Takes the connect of link 0 and answers that it succeeded.
    mutating func acceptConnect(_ model: ModuleModel, within: UInt32 = 20_000) {
        let answer = model.connectAnswer
        expect(model.connectPrefix, within: within) { _ in [.send(answer)] }
    }

    /// Announces that `total` bytes wait for link 0.
    mutating func announce(_ model: ModuleModel, total: Int) { send(model.dataNotice(total: total)) }

    /// Serves reads until `target` bytes of the model's data were handed out.
    mutating func serveReads(_ model: ModuleModel, upTo target: Int, maxPerAnswer: Int = .max, within: UInt32 = 10_000,
                             trailer: [UInt8] = []) {
        append(model.serveSteps(upTo: target, maxPerAnswer: maxPerAnswer, within: within, trailer: trailer))
    }

    /// The module restarts: its boot banner, and echo on again.
    mutating func restart(_ model: ModuleModel) {
        let banner = model.restartBanner
        steps.append(.perform("restart (\(ModuleReport.show(banner, limit: 20)))") {
            model.restarted()
            return [.send(banner)]
        })
    }

    /// Takes `AT+CIPSEND=0,<n>` (or `AT+QISEND=0,<n>`), gives the prompt, consumes the n bytes
    /// into `sink` and answers `SEND OK`.
    mutating func acceptSend(_ model: ModuleModel, into sink: ByteSink? = nil, within: UInt32 = 10_000) {
        let prefix = model.dialect == .bg96 ? "AT+QISEND=0," : "AT+CIPSEND=0,"
        let dialect = model.dialect
        expect(prefix, within: within) { line in
            let n = commandLastInteger(line) ?? 0
            let prompt: String = dialect == .espAT ? "\r\nOK\r\n\r\n>" : "\r\n> "
            let done: String = switch dialect {
            case .espAT: "\r\nRecv \(n) bytes\r\n\r\nSEND OK\r\n"
            case .sim800: "\r\n0, SEND OK\r\n"
            case .bg96: "\r\nSEND OK\r\n"
            }
            return [.send(Array(prompt.utf8)), .consume(n, within: within, into: sink), .send(Array(done.utf8))]
        }
    }
}
