import GenTCP
import GenTCPSerial

/// `--verbose` traces of serial traffic on stderr, through ``Console``.
enum Trace {
    /// Wraps `link` so that every chunk read or written is printed on stderr as hex and text,
    /// after a header line naming the link and the marks.
    /// - Parameters:
    ///   - link: the serial line.
    ///   - runtime: stamps the chunks: the real runtime, or a simulation's for virtual time.
    ///   - boardSide: the program is the board (`simulate`): what it writes is marked `<<`, so
    ///     `>>` always means host to board.
    ///   - name: what the header calls the line (default: the link's description).
    static func wrap(_ link: any SerialLink, runtime: any Runtime = RealRuntime.shared, boardSide: Bool = false,
                     name: String? = nil) -> TracingLink {
        let formatter = SerialTraceFormatter(origin: runtime.now, writtenMark: boardSide ? "<<" : ">>",
                                             readMark: boardSide ? ">>" : "<<")
        Console.shared.line(header(name ?? link.description, virtual: !(runtime is RealRuntime)))
        return TracingLink(wrapping: link, runtime: runtime) { event in
            Console.shared.lines(formatter.lines(for: event))
        }
    }

    /// A formatter and header for traffic that does not go through a ``SerialLink`` (`capture`).
    static func start(_ name: String, origin: UInt64) -> SerialTraceFormatter {
        Console.shared.line(header(name, virtual: false))
        return SerialTraceFormatter(origin: origin)
    }

    static func header(_ name: String, virtual: Bool) -> String {
        "gentcp: trace of \(name): >> host to board, << board to host, \(virtual ? "virtual " : "")seconds from now"
    }
}
