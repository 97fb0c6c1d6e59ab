import GenTCPCore
import GenTCPSerial

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

/// The failure line for a serial link that would not open, with a hint for the usual causes.
func failureLine(_ error: SerialLinkError) -> String {
    let hint: String
    switch error.reason {
    case .noSuchFile, .noSuchDevice, .noSuchDeviceOrAddress: hint = "is the board plugged in? `gentcp ports` lists serial ports"
    case .permissionDenied, .notPermitted: hint = "is your user in the dialout group?"
    case .resourceBusy: hint = "another program has the port open"
    case .notATerminal: hint = "not a serial port or pty"
    default: hint = ""
    }
    return failureLine(atom: "\(error.reason.atom)", summary: "\(error.reason.summary)", notes: ["\(error)", hint])
}

/// Writes one line to stderr and waits until it is written (so it is never lost at exit), after
/// whatever ``Console`` had queued and above the progress line if one is shown.
func printError(_ line: String) {
    Console.shared.line(line)
    Console.shared.flush()
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
