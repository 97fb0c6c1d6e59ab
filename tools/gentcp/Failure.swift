import GenTCPCore
import GenTCPPOSIX
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
    failureLine(atom: "\(error.reason.atom)", summary: reasonSummary(error),
                notes: ["\(error.detail)", hint ?? ""])
}

/// The reason's summary, or for a TLS alert the alert and the side that raised it
/// (`unknown_ca, generated`): what OTP's `{tls_alert, ...}` names.
func reasonSummary(_ error: SocketError) -> String {
    if error.reason == .tlsAlert, let alert = error.alert, let origin = error.alertOrigin {
        return "\(alert.name), \(origin)"
    }
    return "\(error.reason.summary)"
}

/// The failure line for a serial link that would not open, with a hint for the usual causes:
/// `gentcp: enoent: /dev/ttyUSB9: no such device (is the board plugged in? ...)`,
/// `gentcp: enotty: /tmp/x is not a serial port (a regular file; ...)`.
func failureLine(_ error: SerialLinkError) -> String {
    let ports = "`gentcp ports` lists serial ports"
    switch error.reason {
    case .noSuchFile, .noSuchDevice, .noSuchDeviceOrAddress:
        // SerialDevice's message says what is there instead, after "no such device: ".
        let prefix = "no such device: "
        let what = error.message.hasPrefix(prefix) ? String(error.message.dropFirst(prefix.count)) : ""
        return failureLine(atom: "\(error.reason.atom)", summary: "\(error.path): no such device",
                           notes: [what, "is the board plugged in? \(ports)"])
    case .notATerminal:
        let prefix = "not a serial port: "
        let what = error.message.hasPrefix(prefix) ? String(error.message.dropFirst(prefix.count)) : error.message
        return failureLine(atom: "enotty", summary: "\(error.path) is not a serial port",
                           notes: [what, "give the board's serial port or a pty; \(ports)"])
    default:
        break
    }
    let hint: String
    switch error.reason {
    case .permissionDenied, .notPermitted: hint = "is your user in the dialout group?"
    case .resourceBusy: hint = "another program has the port open"
    default: hint = ""
    }
    return failureLine(atom: "\(error.reason.atom)", summary: "\(error.reason.summary)", notes: ["\(error)", hint])
}

/// `107,776`: a count with a comma between groups of three digits.
func groupedCount(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return n < 0 ? "-" + out : out
}

/// The one line for a connection that broke after it was established, saying what happened
/// on the link and how far the transfer got:
/// `gentcp: econnaborted: the modem restarted (ready) after 107,776 bytes received; HINT`.
///
/// - Parameters:
///   - incident: the driver's ``SerialLinkIncidents/lastIncident``; when nil the summary is the
///     reason's own (with the error's detail, if any).
///   - received: bytes received (and written to stdout).
func transferFailureLine(_ error: SocketError, incident: String?, received: Int, hint: String?) -> String {
    var summary: String
    if let incident, !incident.isEmpty {
        summary = incident
    } else {
        summary = reasonSummary(error)
        let detail = "\(error.detail)"
        if !detail.isEmpty { summary += " (\(detail))" }
    }
    summary += " after \(groupedCount(received)) bytes received"
    var line = "gentcp: \(error.reason.atom): \(summary)"
    if let hint, !hint.isEmpty { line += "; " + hint }
    return line
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

/// The line for a stdin/stdout failure: the errno's atom and summary from GenTCP's own table
/// (never a bare number), e.g. `gentcp: epipe: broken pipe (writing stdout)`.
func fileFailureLine(_ code: Int32, what: String) -> String {
    let reason = SocketError.Reason(errno: code)
    var notes = [what]
    // An errno GenTCP has no atom for becomes eio; keep the system's words for it.
    if reason == .ioError && code != EIO { notes.append(String(cString: strerror(code))) }
    return failureLine(atom: "\(reason.atom)", summary: "\(reason.summary)", notes: notes)
}
