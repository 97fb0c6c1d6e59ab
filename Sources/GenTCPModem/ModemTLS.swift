/// Where a module finds the CA certificates it checks a TLS server against.
public enum ModemTLSTrust: Sendable {
    /// No check: the module takes any certificate.
    case none
    /// A CA slot in the module's flash (ESP-AT's `ca_number` of `AT+CIPSSLCCONF`).
    case slot(Int)
    /// A file in the module's storage (Quectel's `"UFS:cacert.pem"`).
    case file(String)
    /// PEM bytes written to the module's file `name` before the link opens (Quectel
    /// `AT+QFUPL`), then used as ``file(_:)``.
    case upload(name: String, pem: [UInt8])
}

/// What a module-run TLS link checks and offers: the engine-side form of GenTCP's
/// `OffloadedTLS`, turned into commands by ``ModemDialect/tlsSteps(link:host:settings:)``.
public struct ModemTLSSettings: Sendable {
    /// How the module checks the server.
    public var trust: ModemTLSTrust
    /// The SNI name; nil: the host the link opens to, when it is a name.
    public var serverName: String?
    /// ALPN protocols offered, in order; empty: none.
    public var applicationProtocols: [String]
    /// The module's client certificate slot (ESP-AT `pki_number`), nil: none.
    public var clientCertificateSlot: Int?

    /// Settings with every field as named.
    public init(trust: ModemTLSTrust, serverName: String? = nil, applicationProtocols: [String] = [],
                clientCertificateSlot: Int? = nil) {
        self.trust = trust
        self.serverName = serverName
        self.applicationProtocols = applicationProtocols
        self.clientCertificateSlot = clientCertificateSlot
    }
}

/// One TLS setting command, written before a secure link opens
/// (``ModemCommand/configureTLS(link:step:)``). Each dialect builds only its own steps and throws
/// ``ModemReason/notSupported`` for the others.
public enum ModemTLSStep: Sendable {
    /// ESP-AT `AT+CIPSSLCCONF=<link>,<auth_mode>,<pki_number>,<ca_number>`: auth mode 0 (no
    /// check), 1 (client certificate), 2 (check the server against CA slot `ca`), 3 (both).
    case espConfigure(authMode: Int, pki: Int, ca: Int)
    /// ESP-AT `AT+CIPSSLCSNI=<link>,"<name>"`.
    case espServerName(String)
    /// ESP-AT `AT+CIPSSLCALPN=<link>,<count>,"<p1>"[,"<p2>"[,"<p3>"]]` (at most three).
    case espApplicationProtocols([String])
    /// Quectel `AT+QSSLCFG="sslversion",<ctx>,4`: any TLS version the module has.
    case quectelAnyVersion
    /// Quectel `AT+QSSLCFG="seclevel",<ctx>,<n>`: 0 no check, 1 check the server, 2 mutual.
    case quectelSecurityLevel(Int)
    /// Quectel `AT+QSSLCFG="cacert",<ctx>,"<path>"`.
    case quectelCACertificate(String)
    /// Quectel `AT+QSSLCFG="sni",<ctx>,<0|1>`: send the open's host as SNI (newer firmware).
    case quectelServerName(Bool)
    /// Quectel `AT+QFDEL="<name>"`: removes a file before an upload replaces it. Optional: a
    /// module that has no such file answers an error, and the upload goes on.
    case quectelDeleteFile(String)
    /// Quectel `AT+QFUPL="<name>",<size>`: writes `pem` to the module's file `name` (run through
    /// ``ModemEngine/upload(_:link:name:now:)``, not as a plain command).
    case quectelUpload(name: String, pem: [UInt8])
    /// SIMCom `AT+CIPSSL=<0|1>`: the next `AT+CIPSTART` opens a TLS (1) or plain (0) link. A
    /// module-wide switch, so a plain connect after a TLS one turns it off first.
    case simcomSSL(Bool)
}

extension ModemTLSStep {
    /// Whether the connect goes on when the module refuses this step (a delete of a file that
    /// is not there).
    public var isOptional: Bool {
        if case .quectelDeleteFile = self { return true }
        return false
    }
}

extension ModemDialect {
    /// Default: the dialect has no TLS (``ModemReason/notSupported``).
    public func tlsSteps(link: Int, host: String, settings: ModemTLSSettings) throws(ModemError) -> [ModemTLSStep] {
        throw ModemError(.notSupported, "this module runs no TLS")
    }

    /// Default: a plain connect needs nothing first.
    public func plainConnectSteps(link: Int) -> [ModemTLSStep] { [] }
}

extension ModemTLSSettings {
    /// Whether `host` is an IPv4 or IPv6 literal (no SNI is sent for an address, RFC 6066 §3).
    static func isAddressLiteral(_ host: String) -> Bool {
        // Over the contiguous bytes (ModemValidation.withUTF8): iterating `String.utf8` itself
        // drags String index machinery into an Embedded build.
        ModemValidation.withUTF8(host) { bytes in
            var onlyDigitsAndDots = true
            for b in bytes {
                if b == UInt8(ascii: ":") { return true }
                if !(b == UInt8(ascii: ".") || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))) { onlyDigitsAndDots = false }
            }
            return onlyDigitsAndDots
        }
    }

    /// The SNI name to send for `host`: ``serverName``, else `host` when it is a name.
    public func sniName(host: String) -> String? {
        if let serverName { return serverName }
        return ModemTLSSettings.isAddressLiteral(host) ? nil : host
    }
}

// Equality by bytes, written out: the synthesised one compares `String`s with `==`, which is
// Unicode canonical equivalence and links the stdlib's normalisation tables (some 30 KB in an
// Embedded build). Wire strings are equal when their bytes are.

/// Whether two strings have the same UTF-8 bytes.
func sameBytes(_ a: String, _ b: String) -> Bool {
    ModemValidation.withUTF8(a) { x in
        ModemValidation.withUTF8(b) { y in
            guard x.count == y.count else { return false }
            for i in 0..<x.count where x[i] != y[i] { return false }
            return true
        }
    }
}

/// Whether two optional strings are both nil or have the same bytes.
func sameBytes(_ a: String?, _ b: String?) -> Bool {
    switch (a, b) {
    case (nil, nil): true
    case (let x?, let y?): sameBytes(x, y)
    default: false
    }
}

/// Whether two lists of strings have the same bytes, in order.
func sameBytes(_ a: [String], _ b: [String]) -> Bool {
    guard a.count == b.count else { return false }
    for i in 0..<a.count where !sameBytes(a[i], b[i]) { return false }
    return true
}

extension ModemTLSTrust: Equatable {
    /// Same case, same slot, same file name bytes.
    public static func == (l: ModemTLSTrust, r: ModemTLSTrust) -> Bool {
        switch (l, r) {
        case (.none, .none): true
        case (.slot(let a), .slot(let b)): a == b
        case (.file(let a), .file(let b)): sameBytes(a, b)
        case (.upload(let a, let p), .upload(let b, let q)): sameBytes(a, b) && p == q
        default: false
        }
    }
}

extension ModemTLSSettings: Equatable {
    /// Every field equal, strings by their bytes.
    public static func == (l: ModemTLSSettings, r: ModemTLSSettings) -> Bool {
        l.trust == r.trust && sameBytes(l.serverName, r.serverName)
            && sameBytes(l.applicationProtocols, r.applicationProtocols) && l.clientCertificateSlot == r.clientCertificateSlot
    }
}

extension ModemTLSStep: Equatable {
    /// Same case, same values, strings by their bytes.
    public static func == (l: ModemTLSStep, r: ModemTLSStep) -> Bool {
        switch (l, r) {
        case (.espConfigure(let a, let b, let c), .espConfigure(let x, let y, let z)): a == x && b == y && c == z
        case (.espServerName(let a), .espServerName(let b)): sameBytes(a, b)
        case (.espApplicationProtocols(let a), .espApplicationProtocols(let b)): sameBytes(a, b)
        case (.quectelAnyVersion, .quectelAnyVersion): true
        case (.quectelSecurityLevel(let a), .quectelSecurityLevel(let b)): a == b
        case (.quectelCACertificate(let a), .quectelCACertificate(let b)): sameBytes(a, b)
        case (.quectelServerName(let a), .quectelServerName(let b)): a == b
        case (.quectelDeleteFile(let a), .quectelDeleteFile(let b)): sameBytes(a, b)
        case (.quectelUpload(let a, let p), .quectelUpload(let b, let q)): sameBytes(a, b) && p == q
        case (.simcomSSL(let a), .simcomSSL(let b)): a == b
        default: false
        }
    }
}
