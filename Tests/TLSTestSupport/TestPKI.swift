import Foundation
import Synchronization

/// The `openssl` command, or `nil` when it is not installed (the real-peer tests then skip).
public let opensslPath: String? = {
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(directory)/openssl"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}()

/// Why the TLS tests cannot run here, or `nil` when they can.
public let skipReason: String? = opensslPath == nil ? "the openssl command is not installed (Debian: apt-get install openssl)" : nil

/// A throw-away test PKI made once per test run with the openssl CLI, in a temporary directory
/// removed at exit: a CA, a `localhost` server certificate (SAN DNS:localhost, IP:127.0.0.1), an
/// expired one, a self-signed leaf, one for `wrong.example`, a client certificate from the CA, and
/// a CA and client certificate unrelated to it. ECDSA P-256, as the reference's PKI.
public struct TestPKI: Sendable {
    public let directory: String

    public func pem(_ name: String) -> String { "\(directory)/\(name).pem" }
    public func key(_ name: String) -> String { "\(directory)/\(name).key" }

    static let shared: Result<TestPKI, PKIError> = {
        guard let openssl = opensslPath else { return .failure(PKIError(text: "no openssl")) }
        let directory = NSTemporaryDirectory() + "gentcp-tls-pki-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            return .failure(PKIError(text: "\(error)"))
        }
        atexit { TestPKI.removeAtExit() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["OPENSSL"] = openssl
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch { return .failure(PKIError(text: "\(error)")) }
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            return .failure(PKIError(text: "test PKI generation failed: \(text)"))
        }
        pkiDirectoryForCleanup.withLock { $0 = directory }
        return .success(TestPKI(directory: directory))
    }()

    public static func get() throws -> TestPKI { try shared.get() }

    private static func removeAtExit() {
        if let directory = pkiDirectoryForCleanup.withLock({ $0 }) {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    private static let script = #"""
        set -e
        cat > pki.cnf <<'CNF'
        [req]
        distinguished_name = dn
        prompt = no
        [dn]
        CN = unused
        [ca_ext]
        basicConstraints = critical,CA:TRUE
        keyUsage = critical,keyCertSign,cRLSign
        subjectKeyIdentifier = hash
        [server_ext]
        basicConstraints = critical,CA:FALSE
        subjectAltName = DNS:localhost,IP:127.0.0.1
        extendedKeyUsage = serverAuth
        [self_ext]
        basicConstraints = critical,CA:FALSE
        subjectAltName = DNS:localhost,IP:127.0.0.1
        extendedKeyUsage = serverAuth
        [wrong_ext]
        basicConstraints = critical,CA:FALSE
        subjectAltName = DNS:wrong.example
        extendedKeyUsage = serverAuth
        [client_ext]
        basicConstraints = critical,CA:FALSE
        extendedKeyUsage = clientAuth
        CNF
        key() { "$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
        ca() { key "$1"; "$OPENSSL" req -x509 -config pki.cnf -extensions ca_ext -key "$1.key" -out "$1.pem" -days 30 -subj "/CN=$2"; }
        leaf() {
          key "$1"; "$OPENSSL" req -new -config pki.cnf -key "$1.key" -out "$1.csr" -subj "/CN=$2"
          "$OPENSSL" x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "0x$("$OPENSSL" rand -hex 8)" \
            -days "$5" -extfile pki.cnf -extensions "$4" -out "$1.pem"
        }
        ca ca "GenTCP Test CA"
        ca rogue-ca "Unrelated Test CA"
        leaf localhost localhost ca server_ext 30
        leaf expired localhost ca server_ext -1
        leaf wrong wrong.example ca wrong_ext 30
        leaf client client ca client_ext 30
        leaf rogue-client client rogue-ca client_ext 30
        key selfsigned
        "$OPENSSL" req -x509 -config pki.cnf -extensions self_ext -key selfsigned.key -out selfsigned.pem -days 30 -subj /CN=localhost
        """#
}

public struct PKIError: Error, CustomStringConvertible {
    public let text: String
    public var description: String { text }
}

let pkiDirectoryForCleanup = Mutex<String?>(nil)
