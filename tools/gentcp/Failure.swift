import GenTCPCore

/// Exit statuses of `gentcp`.
enum Status {
    /// A clean run: the peer closed and every byte was copied.
    static let ok: Int32 = 0
    /// The connection or a copy failed (refused, reset, timed out, stdin/stdout error).
    static let failed: Int32 = 1
    /// Bad arguments (as ArgumentParser's own validation errors, `EX_USAGE`).
    static let usage: Int32 = 64
}

/// The one line `gentcp` prints on stderr for a failure:
/// `gentcp: econnrefused: connection refused (is anything listening on 127.0.0.1:9?)`.
func failureLine(atom: String, summary: String, notes: [String]) -> String {
    let shown = notes.filter { !$0.isEmpty }
    var line = "gentcp: \(atom): \(summary)"
    if !shown.isEmpty { line += " (" + shown.joined(separator: "; ") + ")" }
    return line
}

/// The failure line for a socket error, with the error's detail and an optional hint.
func failureLine(_ error: SocketError, hint: String? = nil) -> String {
    failureLine(atom: "\(error.reason.atom)", summary: "\(error.reason.summary)",
                notes: ["\(error.detail)", hint ?? ""])
}

/// Writes one line to stderr (unbuffered, so it is never lost at exit).
func printError(_ line: String) {
    _ = writeBlocking(2, Array((line + "\n").utf8))
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The errno atom and summary for stdin/stdout failures, via GenTCP's own table.
func fileFailureLine(_ code: Int32, what: String) -> String {
    let atom: String
    let summary: String
    switch code {
    case EPIPE: atom = "epipe"; summary = "broken pipe"
    case EIO: atom = "eio"; summary = "input/output error"
    case EBADF: atom = "ebadf"; summary = "bad file descriptor"
    case EAGAIN: atom = "eagain"; summary = "resource temporarily unavailable"
    case EISDIR: atom = "eisdir"; summary = "is a directory"
    case ENOSPC: atom = "enospc"; summary = "no space left on device"
    default:
        atom = "errno\(code)"
        summary = String(cString: strerror(code))
    }
    return failureLine(atom: atom, summary: summary, notes: [what])
}
