import GenTCPBoard
import GenTCPCore
import GenTCPModem

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
/// Exit statuses: 0 done; 1 no connection after every attempt; 2 the network went down (or did
/// not come up within `attempts` × `connectTimeout` of a failed bring-up);
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
    /// The wait for a failed bring-up to succeed (see `networkDown`).
    static let bringUpTag: UInt32 = 4

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
            net.cancelTimer(tag: Self.bringUpTag)
            if socket == nil { connect(&net) }
        case .networkDown:
            // Before the first connect, this is a bring-up that failed (a module slow to answer,
            // a station not joined yet): the interface starts it over, so wait for `networkUp`
            // as long as the connects would have taken. Once connecting, the run is lost.
            if socket == nil && attempt == 0 {
                do throws(SocketError) {
                    try net.sendAfter(Int64(settings.connectTimeout) * Int64(settings.attempts), tag: Self.bringUpTag)
                    return
                } catch {}
            }
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
            if tag == Self.bringUpTag { net.stop(status: 2) }
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

/// The ESP-AT telemetry firmware's entry point (`esp-at-client`).
public enum TelemetryFirmware {
    /// Brings the ESP-AT module on `board`'s line up (joining `ssid` when given), runs the
    /// telemetry client, and returns its exit status once its close reached the module.
    public static func run<B: Board>(board: consuming B, settings: TelemetrySettings, ssid: String? = nil,
                                     password: String = "") -> Int32 {
        var board = board
        board.log("gentcp: esp-at-client starting")
        var runtime = BoardRuntime(
            board: board, interface: ModemInterface(dialect: ESPATDialect(), configuration: modem(ssid: ssid, password: password)),
            program: TelemetryClient(settings: settings), limits: limits)
        return runtime.run()
    }

    /// The module's settings: one link, 1,460-byte rings, the reduced engine.
    public static func modem(ssid: String?, password: String) -> ModemInterfaceConfiguration {
        ModemInterfaceConfiguration(wifiSSID: ssid, wifiPassword: password, links: 1)
    }

    /// One socket, three timers, 256-byte messages.
    public static let limits = NetLimits(sockets: 1, listeners: 0, timers: 3, largestBuffer: 256, notices: 8)
}
