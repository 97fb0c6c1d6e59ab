import GenTCPBoard
import GenTCPCore

/// What the telemetry client sends, where, and how often.
public struct TelemetrySettings: Sendable {
    /// The collector's address (through a modem: an address the module can reach).
    public var collector: IPAddress
    /// The collector's TCP port.
    public var port: UInt16
    /// Readings to send before closing.
    public var count: Int
    /// Milliseconds between readings.
    public var interval: Int64
    /// Connect attempts before giving up (each waits `connectTimeout`).
    public var attempts: Int
    /// The longest one connect may take, in milliseconds.
    public var connectTimeout: Int
    /// The longest the client waits for the collector's acknowledgements after the last
    /// reading, in milliseconds.
    public var ackTimeout: Int64

    /// Settings for `count` readings every `interval` ms to `collector`:`port`.
    public init(collector: IPAddress, port: UInt16, count: Int = 8, interval: Int64 = 250, attempts: Int = 3,
                connectTimeout: Int = 30_000, ackTimeout: Int64 = 30_000) {
        self.collector = collector
        self.port = port
        self.count = count
        self.interval = interval
        self.attempts = attempts
        self.connectTimeout = connectTimeout
        self.ackTimeout = ackTimeout
    }
}

/// A telemetry client: once the network is up it connects to a collector, sends one line per
/// reading (`t <sequence> <uptime ms>\n`), reads the collector's `ack <sequence>\n` lines in
/// `{active, once}`, and when every reading is acknowledged closes and stops with status 0.
///
/// Exit statuses: 0 done; 1 no connection after every attempt; 2 the network went down;
/// 3 the collector closed or failed early; 4 a wrong acknowledgement; 5 acknowledgements late.
public struct TelemetryClient: BoardProgram, ~Copyable {
    let settings: TelemetrySettings
    var socket: BoardSocket?
    var attempt = 0
    var sent = 0
    var acknowledged = 0
    /// The acknowledgement line being read (it may come in pieces).
    var line: [UInt8] = []
    var text: [UInt8] = []

    static let tickTag: UInt32 = 1
    static let retryTag: UInt32 = 2
    static let ackTag: UInt32 = 3

    /// A client with the given settings.
    public init(settings: TelemetrySettings) {
        self.settings = settings
        line.reserveCapacity(32)
        text.reserveCapacity(48)
    }

    public mutating func start<I: NetworkInterface & ~Copyable>(_ net: inout Net<I>) {}

    public mutating func receive<I: NetworkInterface & ~Copyable>(_ message: BoardMessage, _ net: inout Net<I>) {
        switch message {
        case .networkUp:
            if socket == nil { connect(&net) }
        case .networkDown:
            net.stop(status: 2)
        case .connected(let s):
            guard s == socket else { return }
            sendReading(&net)
        case .connectFailed(let s, _):
            guard s == socket else { return }
            socket = nil
            if attempt >= settings.attempts { net.stop(status: 1) } else { try? net.sendAfter(1000, tag: Self.retryTag) }
        case .timer(let tag):
            if tag == Self.retryTag { connect(&net) }
            if tag == Self.tickTag { sendReading(&net) }
            if tag == Self.ackTag { net.stop(status: 5) }
        case .tcp(let s, let bytes):
            guard s == socket else { return }
            for byte in bytes { take(byte, &net) }
            if net.stopStatus == nil { try? net.setopts(s, [.active(.once)]) }
        case .tcpClosed(let s), .tcpError(let s, _):
            guard s == socket else { return }
            net.stop(status: 3)
        default:
            break
        }
    }

    mutating func connect<I: NetworkInterface & ~Copyable>(_ net: inout Net<I>) {
        attempt += 1
        do throws(SocketError) {
            socket = try net.connect(to: settings.collector, port: settings.port,
                                     options: [.binary, .active(.once), .buffer(256), .nodelay(true)],
                                     timeout: .milliseconds(settings.connectTimeout))
        } catch {
            if attempt >= settings.attempts { net.stop(status: 1) } else { try? net.sendAfter(1000, tag: Self.retryTag) }
        }
    }

    /// Sends `t <sequence> <uptime>\n`; arms the next reading, or the wait for the last acks.
    mutating func sendReading<I: NetworkInterface & ~Copyable>(_ net: inout Net<I>) {
        guard let socket, sent < settings.count else { return }
        text.removeAll(keepingCapacity: true)
        text.append(UInt8(ascii: "t"))
        text.append(UInt8(ascii: " "))
        Self.appendDecimal(UInt64(sent), to: &text)
        text.append(UInt8(ascii: " "))
        Self.appendDecimal(UInt64(max(net.now.milliseconds, 0)), to: &text)
        text.append(UInt8(ascii: "\n"))
        do throws(SocketError) {
            // A line is far below any send buffer: a short send means the connection is stuck.
            guard try net.send(socket, text) == text.count else {
                net.stop(status: 3)
                return
            }
        } catch {
            net.stop(status: 3)
            return
        }
        sent += 1
        if sent < settings.count {
            try? net.sendAfter(settings.interval, tag: Self.tickTag)
        } else {
            try? net.sendAfter(settings.ackTimeout, tag: Self.ackTag)
        }
    }

    /// One byte of the collector's answer.
    mutating func take<I: NetworkInterface & ~Copyable>(_ byte: UInt8, _ net: inout Net<I>) {
        guard byte == UInt8(ascii: "\n") else {
            if line.count < 32 { line.append(byte) } else { net.stop(status: 4) }
            return
        }
        text.removeAll(keepingCapacity: true)
        text.append(contentsOf: [UInt8(ascii: "a"), UInt8(ascii: "c"), UInt8(ascii: "k"), UInt8(ascii: " ")])
        Self.appendDecimal(UInt64(acknowledged), to: &text)
        let matches = line == text
        line.removeAll(keepingCapacity: true)
        guard matches, acknowledged < sent else {
            net.stop(status: 4)
            return
        }
        acknowledged += 1
        if acknowledged == settings.count, let socket {
            net.cancelTimer(tag: Self.ackTag)
            net.close(socket)
            self.socket = nil
            net.stop(status: 0)
        }
    }

    static func appendDecimal(_ value: UInt64, to bytes: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var v = value
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[count] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                count += 1
            } while v > 0
            for i in stride(from: count - 1, through: 0, by: -1) { bytes.append(raw[i]) }
        }
    }
}
