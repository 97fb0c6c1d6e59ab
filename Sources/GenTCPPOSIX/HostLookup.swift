import GenTCPCore
#if canImport(Glibc)
import Glibc
#endif

/// Where the posix driver looks host names up: OTP's `inet_db:set_lookup/1` with `[native]` or
/// `[file]`.
///
/// ```swift
/// // Names from /etc/hosts only: a test or a tool that must never send a DNS query.
/// let driver = POSIXDriver(lookup: .hostsFile())
/// ```
public enum HostLookup: Hashable, Sendable {
    /// `getaddrinfo(3)`: the system's order (`/etc/nsswitch.conf`: the hosts file, then DNS,
    /// usually). OTP's `native`. The default.
    case system
    /// Only the hosts file at `path`, re-read at each lookup; a name it does not list is
    /// `nxdomain` at once and no DNS query leaves the machine. OTP's `file` (with
    /// `inet_db:set_lookup([file])`). Names match without regard to ASCII case, aliases too.
    case hostsFile(path: String = "/etc/hosts")

    /// Every distinct address of `host`, in the source's order (empty when it has none).
    func addresses(of host: String) -> [IPAddress] {
        switch self {
        case .system: Resolver.getaddrinfo(host)
        case .hostsFile(let path): HostsFile.lookup(host, in: HostsFile.read(path))
        }
    }
}

/// The hosts(5) format: an address, then its canonical name and aliases, separated by blanks;
/// `#` starts a comment. Lines that do not parse are skipped, as the C library does.
enum HostsFile {
    /// The file's text, or "" when it cannot be read (no file is no names, not an error).
    static func read(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        // A hosts file is small; a huge one is cut at 4 MiB rather than held whole.
        while bytes.count < 4 << 20 {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if n == 0 { break }
            bytes += chunk[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The addresses listed for `host` in `text`, each once, in file order.
    static func lookup(_ host: String, in text: String) -> [IPAddress] {
        let wanted = lowercased(host)
        guard !wanted.isEmpty else { return [] }
        var out: [IPAddress] = []
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let address = IPAddress(String(fields[0])) else { continue }
            if fields.dropFirst().contains(where: { lowercased(String($0)) == wanted }), !out.contains(address) {
                out.append(address)
            }
        }
        return out
    }

    /// ASCII lower case (host names are ASCII; others are left as they are).
    private static func lowercased(_ s: String) -> String {
        String(decoding: s.utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
