/// Which AT dialect a module speaks: the one name board profiles, the at driver and the modem
/// simulator share. ``description`` is the name in board files and on the command line
/// (`esp-at`, `sim800`, `bg96`); `GenTCPSerial` reads it back with `ATDialect(name:)`.
///
/// There is no `String` raw value on purpose: comparing strings links the standard library's
/// Unicode tables (about 22 KB on a Cortex-M4), which firmware choosing its dialect in code
/// never needs.
///
/// ```swift
/// let engine = ModemEngine(dialect: ATDialect.sim800.makeDialect(), configuration: ModemConfiguration())
/// ```
public enum ATDialect: Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// `esp-at`: Espressif ESP-AT (ESP32, ESP8266 ESP-AT): `AT+CIPSTART`, passive receive by
    /// firmware version.
    case espAT
    /// `sim800`: the SIMCom SIM800 TCP/IP toolkit: `AT+CIPSTART`, `AT+CIPRXGET` manual
    /// receive, bearer set-up.
    case sim800
    /// `bg96`: Quectel BG96: `AT+QIOPEN` in buffer access mode, `AT+QIRD`, bearer set-up.
    case bg96

    /// The dialect's name: `esp-at`, `sim800` or `bg96`.
    public var description: String {
        switch self {
        case .espAT: "esp-at"
        case .sim800: "sim800"
        case .bg96: "bg96"
        }
    }

    /// The engine's dialect value for this name.
    /// - Parameter contextID: the PDP context BG96 uses (`AT+QIACT=<contextID>`); ignored by
    ///   the others.
    public func makeDialect(contextID: Int = 1) -> StandardDialect {
        switch self {
        case .espAT: .espAT(ESPATDialect())
        case .sim800: .sim800(SIM800Dialect())
        case .bg96: .bg96(BG96Dialect(contextID: contextID))
        }
    }
}
