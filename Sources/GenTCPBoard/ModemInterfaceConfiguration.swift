import GenTCPCore
import GenTCPModem

/// The settings of a ``ModemInterface``, fixed at init: what the bring-up joins, how many links
/// the board uses and how large their buffers are, and the engine's sizes.
///
/// Every buffer is allocated once from these numbers when the interface is made:
/// `links × (receiveBufferSize + sendBufferSize)` bytes for the connections, plus the engine's
/// own (``engine``).
public struct ModemInterfaceConfiguration: Sendable {
    /// The Wi-Fi network an ESP-AT module joins at start (`AT+CWJAP`); nil skips the join (the
    /// module joins a network it saved, or one configured elsewhere).
    public var wifiSSID: String?
    /// The Wi-Fi password (empty for an open network).
    public var wifiPassword: String
    /// The packet bearer's access point name for a cellular module (SIM800 `AT+CSTT`, BG96
    /// `AT+QICSGP`); nil skips the bearer set-up (ESP-AT, or a module whose context is up).
    public var apn: String?
    /// The APN user name (usually empty).
    public var apnUser: String
    /// The APN password (usually empty).
    public var apnPassword: String
    /// How many of the module's links the board uses at once (link ids `0..<links`); clamped to
    /// `1...` the dialect's maximum. Default 1: one connection, the firmware's RAM budget.
    public var links: Int
    /// Bytes received and not yet read, per link: the module keeps the rest (passive receive)
    /// and its TCP window closes, so this is the board's flow control. Default 1460.
    public var receiveBufferSize: Int
    /// Bytes taken by `send` and not yet confirmed by the module (`SEND OK`), per link.
    /// Default 1460.
    public var sendBufferSize: Int
    /// How many times the bring-up sends `AT` before it gives up with `etimedout`. Default 5.
    public var probeAttempts: Int
    /// The pause between two unanswered probes. Default 500 ms.
    public var probeInterval: Milliseconds
    /// After a failed bring-up (or a lost network), how long the interface waits before it
    /// starts over from the probe. Default 5 s.
    public var retryDelay: Milliseconds
    /// The engine's sizes and timings (see ``reducedEngine``).
    public var engine: ModemConfiguration

    /// The engine configuration for a microcontroller: 256-byte send chunks, payload pieces and
    /// response store, 8 response lines; every timing at the engine's default.
    public static var reducedEngine: ModemConfiguration {
        var engine = ModemConfiguration()
        engine.maxSendChunk = 256
        engine.maxPieceLength = 256
        engine.maxResponseBytes = 256
        engine.maxResponseLines = 8
        return engine
    }

    /// A configuration with every setting as named; the defaults suit one ESP-AT connection.
    public init(wifiSSID: String? = nil, wifiPassword: String = "", apn: String? = nil, apnUser: String = "",
                apnPassword: String = "", links: Int = 1, receiveBufferSize: Int = 1460, sendBufferSize: Int = 1460,
                probeAttempts: Int = 5, probeInterval: Milliseconds = 500, retryDelay: Milliseconds = 5_000,
                engine: ModemConfiguration = ModemInterfaceConfiguration.reducedEngine) {
        self.wifiSSID = wifiSSID
        self.wifiPassword = wifiPassword
        self.apn = apn
        self.apnUser = apnUser
        self.apnPassword = apnPassword
        self.links = links
        self.receiveBufferSize = receiveBufferSize
        self.sendBufferSize = sendBufferSize
        self.probeAttempts = probeAttempts
        self.probeInterval = probeInterval
        self.retryDelay = retryDelay
        self.engine = engine
    }
}
