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
