import GenTCPCore

/// The engine's clock type before the embedded cores shared one: GenTCPCore's `MillisecondInstant` (whose
/// `milliseconds` are `Int64`, from any origin).
@available(*, deprecated, renamed: "MillisecondInstant")
public typealias ModemInstant = MillisecondInstant
