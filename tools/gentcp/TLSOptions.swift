import ArgumentParser
import GenTCP
import GenTCPTLS

/// Where `gentcp connect --tls` runs TLS.
enum TLSMode: String, ExpressibleByArgument, Sendable {
    /// GenTCP's own TLS (OpenSSL) over the driver's plain connection: any driver.
    case host
    /// The modem's own TLS stack (`--driver at`): the module does the handshake.
    case module
}

/// `--tls` and what goes with it, for `gentcp connect`.
///
/// `--tls` alone means `--tls host`; ``normalizedArguments(_:)`` turns the spellings people type
/// (`--tls`, `--tls module`) into the one the parser takes (`--tls=host`, `--tls=module`).
struct TLSOptions: ParsableArguments {
    @ArgumentParser.Option(
        name: .long,
        help: ArgumentHelp("Run TLS: `--tls` (or `--tls host`) with GenTCP's OpenSSL over any driver; `--tls module` with the modem's own TLS (--driver at).", valueName: "host|module"))
    var tls: TLSMode?

    @ArgumentParser.Option(help: ArgumentHelp("Trust the CA certificates in FILE (PEM) instead of the system's store.", valueName: "FILE"))
    var cacert: String?

    @ArgumentParser.Option(help: ArgumentHelp("Trust the hashed CA certificates in DIR (openssl rehash) instead of the system's store.", valueName: "DIR"))
    var capath: String?

    @Flag(help: "Do not check the server's certificate or name (anyone on the path can read and change the data).")
    var insecure = false

    @ArgumentParser.Option(help: ArgumentHelp("Offer these ALPN protocols, in order (comma-separated).", valueName: "LIST"))
    var alpn: String?

    @ArgumentParser.Option(help: ArgumentHelp("Present this client certificate chain (PEM), with --key.", valueName: "FILE"))
    var cert: String?

    @ArgumentParser.Option(help: ArgumentHelp("The private key of --cert (PEM).", valueName: "FILE"))
    var key: String?

    @ArgumentParser.Option(help: ArgumentHelp("Send NAME as SNI and check the certificate against it (default: HOST when it is a name).", valueName: "NAME"))
    var sni: String?

    @ArgumentParser.Option(name: .customLong("tls-version"), help: ArgumentHelp("Only this TLS version: 1.2 or 1.3 (default: both).", valueName: "V"))
    var tlsVersion: String?

    @ArgumentParser.Option(name: .customLong("module-ca"), help: ArgumentHelp("--tls module: the CA the module checks the server against: an ESP-AT CA slot number, or a file in a BG96's storage (UFS:cacert.pem).", valueName: "SLOT|FILE"))
    var moduleCA: String?

    /// What the options ask for, checked together.
    enum Choice: Sendable {
        case none
        case host(TLSContext)
        case module(OffloadedTLS)
    }

    /// The TLS settings, or the one-line `badarg` gentcp prints. A configuration OpenSSL refuses
    /// (a missing file, a key that does not match) is reported here too, before anything connects.
    func choice(driver: DriverName) -> Result<Choice, Connect.UsageFailure> {
        func bad(_ note: String) -> Result<Choice, Connect.UsageFailure> {
            .failure(Connect.UsageFailure(text: failureLine(atom: "badarg", summary: "bad argument", notes: [note])))
        }
        let protocols = alpn.map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) } ?? []
        if protocols.contains(where: \.isEmpty) { return bad("--alpn has an empty protocol name in \"\(alpn ?? "")\"") }
        guard let tls else {
            let stray = [("--cacert", cacert != nil), ("--capath", capath != nil), ("--insecure", insecure),
                         ("--alpn", alpn != nil), ("--cert", cert != nil), ("--key", key != nil), ("--sni", sni != nil),
                         ("--tls-version", tlsVersion != nil), ("--module-ca", moduleCA != nil)]
                .filter(\.1).map(\.0)
            if !stray.isEmpty { return bad("\(stray.joined(separator: ", ")) \(stray.count == 1 ? "goes" : "go") with --tls") }
            return .success(.none)
        }
        switch tls {
        case .module:
            guard driver == .at else { return bad("--tls module needs --driver at (the modem runs the TLS)") }
            for (option, given) in [("--cacert", cacert != nil), ("--capath", capath != nil), ("--cert", cert != nil),
                                    ("--key", key != nil), ("--tls-version", tlsVersion != nil)] where given {
                return bad("\(option) is for --tls host; the module keeps its own certificates (see --module-ca)")
            }
            let verification: OffloadedTLS.Verification
            switch (moduleCA, insecure) {
            case (nil, false):
                return bad("--tls module needs --module-ca SLOT|FILE (the CA the module checks the server against), or --insecure")
            case (_?, true): return bad("--module-ca and --insecure contradict each other")
            case (nil, true): verification = .none
            case (let ca?, false): verification = .peer(Int(ca).map { .slot($0) } ?? .file(ca))
            }
            return .success(.module(OffloadedTLS(verification: verification, serverName: sni, applicationProtocols: protocols)))
        case .host:
            if moduleCA != nil { return bad("--module-ca goes with --tls module") }
            if cacert != nil && capath != nil { return bad("--cacert and --capath: give one") }
            if (cert == nil) != (key == nil) { return bad("--cert and --key go together") }
            var minimum = TLSVersion.v1_2
            var maximum = TLSVersion.v1_3
            switch tlsVersion {
            case nil: break
            case "1.2": maximum = .v1_2
            case "1.3": minimum = .v1_3
            case let other?: return bad("--tls-version must be 1.2 or 1.3, got \"\(other)\"")
            }
            let trust: TLSConfiguration.TrustRoots = cacert.map { .file($0) } ?? capath.map { .directory($0) } ?? .system
            let configuration = TLSConfiguration.client(
                verify: insecure ? .none : .peer, trustRoots: trust,
                serverNameIndication: sni.map { .name($0) } ?? .host, applicationProtocols: protocols,
                minimumVersion: minimum, maximumVersion: maximum, certificateChainFile: cert, privateKeyFile: key)
            do throws(TLSError) {
                return .success(.host(try TLSContext(configuration)))
            } catch {
                return bad("TLS settings refused: \(error)")
            }
        }
    }

    /// The arguments with `--tls` spelled as the parser takes it: `--tls` alone (or before
    /// anything but `host`/`module`) becomes `--tls=host`, `--tls module` becomes `--tls=module`.
    /// Pure, for tests.
    static func normalizedArguments(_ arguments: [String]) -> [String] {
        // `gentcp bench` passes its arguments to gentcp-bench untouched (its own `--tls`).
        if arguments.first == "bench" { return arguments }
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if argument == "--" {
                out += arguments[i...]
                break
            }
            if argument == "--tls" {
                if i + 1 < arguments.count, let mode = TLSMode(rawValue: arguments[i + 1]) {
                    out.append("--tls=\(mode.rawValue)")
                    i += 2
                    continue
                }
                out.append("--tls=host")
            } else {
                out.append(argument)
            }
            i += 1
        }
        return out
    }
}

extension TLSAlert {
    /// What an alert most often means for `gentcp connect`, and what to do about it.
    var connectHint: String? {
        switch self {
        case .unknownCA: "the server's certificate is not signed by a CA you trust; --cacert FILE names the CA, --insecure skips the check"
        case .certificateExpired: "the certificate has expired or is not valid yet (is the clock right?)"
        case .handshakeFailure: "the certificate does not name the host you connected to (--sni NAME checks another name), or no common cipher"
        case .badCertificate: "the certificate was refused (a self-signed server certificate? --cacert FILE trusts it)"
        case .noApplicationProtocol: "the server speaks none of the --alpn protocols"
        case .protocolVersion: "no common TLS version (--tls-version)"
        case .certificateRequired: "the server wants a client certificate: --cert FILE --key FILE"
        case .unexpectedMessage: "the peer does not speak TLS on this port (or broke the protocol)"
        default: nil
        }
    }
}
