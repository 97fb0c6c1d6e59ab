import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `gentcp bench`: runs `gentcp-bench` (built next to `gentcp`) with the same arguments.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the benchmarks (gentcp-bench): GenTCP against raw sockets, as ratios.",
        discussion: """
            Every argument is passed to gentcp-bench (try --quick, or --help). Build it in release \
            mode for meaningful figures: swift build -c release --product gentcp-bench.
            """)

    @Argument(parsing: .allUnrecognized, help: "Arguments for gentcp-bench.")
    var arguments: [String] = []

    mutating func run() async throws {
        let me = URL(resolvingSelf: CommandLine.arguments[0])
        let bench = me.replacingLastComponent(with: "gentcp-bench")
        guard access(bench, X_OK) == 0 else {
            printError(failureLine(atom: "enoent", summary: "no such file or directory",
                                   notes: ["\(bench) is not built: swift build -c release --product gentcp-bench"]))
            throw ExitCode(Status.failed)
        }
        var argv: [UnsafeMutablePointer<CChar>?] = ([bench] + arguments).map { strdup($0) }
        argv.append(nil)
        execv(bench, &argv)
        printError(failureLine(atom: "eio", summary: "input/output error", notes: ["cannot run \(bench)"]))
        throw ExitCode(Status.failed)
    }
}

/// Just enough path handling for finding a sibling executable, without Foundation.
private enum URL {
    /// The real path of this executable (`/proc/self/exe`), or `argv[0]` as given.
    init(resolvingSelf fallback: String) { self = .path(URL.selfPath() ?? fallback) }
    case path(String)

    static func selfPath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func replacingLastComponent(with name: String) -> String {
        guard case .path(let p) = self, let slash = p.lastIndex(of: "/") else { return name }
        return String(p[...slash]) + name
    }
}
