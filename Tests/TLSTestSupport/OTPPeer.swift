import Foundation

/// Erlang/OTP's `ssl` as a test peer: `tools/otp-tls-peer/otp_tls_peer.escript` run with
/// `escript`, a server (listening on 127.0.0.1) or a client, driven by commands on its stdin and
/// answering one line each (the script's header lists them).
///
/// CI installs OTP (`erlang-base`, `erlang-ssl`; `.ci/run` passes them to `tools/bootstrap.sh`).
public struct OTPPeer: Sendable {
    /// The script.
    public static let script = packageRoot + "/tools/otp-tls-peer/otp_tls_peer.escript"

    /// Why OTP's ssl cannot run here, or nil when it can: `escript` must be on PATH and the
    /// `ssl` application installed.
    public static let unavailable: String? = {
        guard let openssl = skipReason else {
            guard executableOnPath("escript") != nil, let erl = executableOnPath("erl") else {
                return "Erlang/OTP is not installed (Debian: apt-get install erlang-base erlang-ssl)"
            }
            let check = Process()
            check.executableURL = URL(fileURLWithPath: erl)
            check.arguments = ["-noshell", "-eval", "halt(case code:lib_dir(ssl) of {error, _} -> 1; _ -> 0 end)."]
            check.standardOutput = FileHandle.nullDevice
            check.standardError = FileHandle.nullDevice
            do { try check.run() } catch { return "erl does not start: \(error)" }
            check.waitUntilExit()
            return check.terminationStatus == 0 ? nil : "OTP's ssl application is missing (Debian: apt-get install erlang-ssl)"
        }
        return openssl
    }()

    /// The peer program.
    public let process: PeerProcess

    /// Starts the script in `mode` (`server` or `client`) with `options` (`port`, `ip`,
    /// `certfile`, `keyfile`, `cacertfile`, `versions`, `alpn`, `verify`, `fail_if_no_peer_cert`,
    /// `sni`, `host`, `active`, `starttls`). `prefix` runs it elsewhere: `["ip", "netns", "exec",
    /// NS]` puts it in a network namespace.
    public init(_ mode: String, _ options: [String: String], prefix: [String] = []) throws {
        let arguments = options.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        process = try PeerProcess(prefix + ["escript", Self.script, mode] + arguments, name: "OTP ssl \(mode)")
    }

    /// An OTP ssl server (on 127.0.0.1 unless `options` has an `ip`) with `certificate` from `pki`
    /// (and the PKI's CA as `cacertfile`, for client certificates); `options` add to or replace those.
    public static func server(
        _ pki: TestPKI, certificate: String = "localhost", _ options: [String: String] = [:], prefix: [String] = []
    ) throws -> OTPPeer {
        let base = ["port": "0", "certfile": pki.pem(certificate), "keyfile": pki.key(certificate), "cacertfile": pki.pem("ca")]
        return try OTPPeer("server", base.merging(options) { $1 }, prefix: prefix)
    }

    /// An OTP ssl client of 127.0.0.1:`port` that verifies the server against the PKI's CA
    /// (`verify_peer`, as OTP 26 would; OTP 25's default is `verify_none`) by the name `localhost`.
    public static func client(_ pki: TestPKI, port: Int, _ options: [String: String] = [:]) throws -> OTPPeer {
        let base = ["port": "\(port)", "cacertfile": pki.pem("ca"), "verify": "verify_peer", "sni": "localhost"]
        return try OTPPeer("client", base.merging(options) { $1 })
    }

    /// The server's port, from its `listening PORT` line.
    public func port() async throws -> Int {
        let line = try await process.nextLine()
        guard line.hasPrefix("listening "), let port = Int(line.dropFirst("listening ".count)) else {
            throw PeerProcessError("\(process.name): expected `listening PORT`, got `\(line)`; output:\n\(process.transcript)")
        }
        return port
    }

    /// How the peer's handshake ended: its `handshake ...` line.
    public func handshake() async throws -> OTPHandshake {
        let line = try await process.nextLine()
        let words = line.split(separator: " ").map(String.init)
        if words.count == 6, words[0] == "handshake", words[1] == "ok" {
            return .ok(version: words[2], alpn: words[3], peerCertificate: words[4] == "peercert",
                       serverName: words[5] == "no_sni" ? nil : words[5])
        }
        if line.hasPrefix("handshake ok_then_error ") {
            return .connectedThenFailed(OTPReason(String(line.dropFirst("handshake ok_then_error ".count))))
        }
        if line.hasPrefix("handshake error ") {
            return .failed(OTPReason(String(line.dropFirst("handshake error ".count))))
        }
        throw PeerProcessError("\(process.name): expected `handshake ...`, got `\(line)`; output:\n\(process.transcript)")
    }

    /// Sends one command and returns the peer's answer line.
    @discardableResult
    public func command(_ command: String, timeout: Duration = .seconds(120)) async throws -> String {
        process.type(command + "\n")
        return try await process.nextLine(timeout: timeout)
    }

    /// Ends the peer: `quit` (it exits), then a kill should it still run.
    public func quit() async {
        _ = try? await command("quit", timeout: .seconds(30))
        process.kill()
    }
}

/// How an OTP peer's handshake ended.
public enum OTPHandshake: Sendable, Equatable, CustomStringConvertible {
    /// `{ok, S}`: the version OTP names (`tlsv1.3`), the ALPN protocol or
    /// `protocol_not_negotiated`, whether the peer sent a certificate, and (server side) the SNI
    /// name the client sent.
    case ok(version: String, alpn: String, peerCertificate: Bool, serverName: String?)
    /// `{ok, S}`, but the first call on S (`connection_information`) failed: the connection was
    /// already gone (a TLS 1.3 client whose certificate the server refused after connect).
    case connectedThenFailed(OTPReason)
    /// `{error, Reason}`.
    case failed(OTPReason)

    public var description: String {
        switch self {
        case .ok(let v, let a, let c, let s): "ok \(v) \(a) \(c ? "peercert" : "no_peercert") \(s ?? "no_sni")"
        case .connectedThenFailed(let r): "ok_then_error \(r)"
        case .failed(let r): "error \(r)"
        }
    }

    /// The handshake's error, or nil when connect or handshake returned `{ok, S}`.
    public var error: OTPReason? {
        if case .failed(let r) = self { return r }
        return nil
    }
}

/// An OTP error reason as the peer prints it: `alert unknown_ca generated` for
/// `{tls_alert, {unknown_ca, "...generated..."}}`, else the term (`closed`, `timeout`).
public struct OTPReason: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    public init(_ text: String) { self.text = text }
    public var description: String { text }

    /// For a TLS alert: its OTP name and `generated` or `received`.
    public var alert: (name: String, side: String)? {
        let words = text.split(separator: " ")
        guard words.count == 3, words[0] == "alert" else { return nil }
        return (String(words[1]), String(words[2]))
    }
}
