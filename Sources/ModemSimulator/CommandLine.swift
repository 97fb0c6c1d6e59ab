/// One command line the module received, split the way AT parsers do.
struct ATCommandLine {
    enum Kind: Equatable { case execute, query, test, set }
    enum Argument {
        case quoted(String)
        case bare(String)

        var int: Int? {
            switch self {
            case .bare(let s): return Int(s)
            case .quoted(let s): return Int(s)  // SIM800 takes "<port>" quoted
            }
        }
        var string: String {
            switch self {
            case .bare(let s), .quoted(let s): return s
            }
        }
        var isQuoted: Bool { if case .quoted = self { return true } else { return false } }
    }

    /// "" for `AT`, "E0", "I", "+CIPSTART"...; upper case for cellular modules.
    var name: String
    var kind: Kind
    var arguments: [Argument]

    func int(_ i: Int) -> Int? { i < arguments.count ? arguments[i].int : nil }
    func string(_ i: Int) -> String? { i < arguments.count ? arguments[i].string : nil }
    func quoted(_ i: Int) -> String? {
        guard i < arguments.count, case .quoted(let s) = arguments[i] else { return nil }
        return s
    }

    /// Parses a line (without its terminator); nil when it is not an AT command.
    /// `caseSensitive`: ESP-AT wants upper case; 3GPP modules take either.
    init?(_ bytes: [UInt8], caseSensitive: Bool) {
        let text = String(decoding: bytes, as: UTF8.self)
        let prefix = String(text.prefix(2))
        guard caseSensitive ? prefix == "AT" : prefix.uppercased() == "AT" else { return nil }
        var rest = Substring(text.dropFirst(2))
        if rest.first == "+" || rest.first == "&" {
            let end = rest.firstIndex(where: { $0 == "=" || $0 == "?" }) ?? rest.endIndex
            name = String(rest[rest.startIndex..<end])
            rest = rest[end...]
        } else {
            name = String(rest)
            rest = ""
        }
        if !caseSensitive { name = name.uppercased() }
        arguments = []
        if rest.isEmpty {
            kind = .execute
        } else if rest == "?" {
            kind = .query
        } else if rest == "=?" {
            kind = .test
        } else if rest.first == "=" {
            kind = .set
            guard let args = ATCommandLine.split(rest.dropFirst()) else { return nil }
            arguments = args
        } else {
            return nil
        }
    }

    /// Splits `a,"b,c",d` on commas outside quotes; nil for an unterminated quote.
    static func split(_ text: Substring) -> [Argument]? {
        var out: [Argument] = []
        var current = ""
        var inQuotes = false
        var wasQuoted = false
        func finish() {
            if wasQuoted {
                out.append(.quoted(current))
            } else {
                out.append(.bare(current.trimmingSpaces()))
            }
            current = ""
            wasQuoted = false
        }
        for ch in text {
            if ch == "\"" {
                inQuotes.toggle()
                if inQuotes { wasQuoted = true; current = "" }
            } else if ch == ",", !inQuotes {
                finish()
            } else if inQuotes || !wasQuoted {
                current.append(ch)
            }
        }
        guard !inQuotes else { return nil }
        finish()
        return out
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// `x.y.z.w` compared numerically (ESP-AT versions).
struct FirmwareVersion: Comparable, Sendable {
    var parts: [Int]
    init(_ text: String) {
        var parts: [Int] = []
        for piece in text.split(separator: ".", omittingEmptySubsequences: false).prefix(4) {
            let digits = piece.prefix(while: { $0.isNumber })
            parts.append(Int(digits) ?? 0)
        }
        while parts.count < 4 { parts.append(0) }
        self.parts = parts
    }
    static func < (a: FirmwareVersion, b: FirmwareVersion) -> Bool { a.parts.lexicographicallyPrecedes(b.parts) }
}
