import Foundation
import GenTCPCore
import GenTCPModem

/// A board or module described once, in a JSON file under `boards/`: how it is reached (a SLIP
/// link or an AT modem), its serial defaults, its SLIP addresses and MTU, its default `buffer`,
/// and its limits. The schema is in `boards/README.md`.
///
/// ```swift
/// let board = try BoardProfile.load(path: "boards/esp32-esp-at.json")
/// // board.link == .at, board.dialect == .espAT, board.serial.baudRate == 115200
/// ```
public struct BoardProfile: Hashable, Sendable {
    /// How the host reaches the board.
    public enum Link: String, Hashable, Sendable, CaseIterable {
        /// IP over SLIP on the serial line; the host runs GenTCP's own stack.
        case slip
        /// An AT-command modem with its own TCP/IP stack.
        case at
    }

    /// The former name of `ATDialect` (module `GenTCPModem`) here.
    @available(*, deprecated, renamed: "ATDialect")
    public typealias Dialect = ATDialect

    /// Point-to-point addressing of a `slip` board.
    public struct SLIPSettings: Hashable, Sendable {
        /// The host's address on the line.
        public var localAddress: IPAddress
        /// The board's address.
        public var peerAddress: IPAddress
        /// The largest IP packet on the line (68...65535).
        public var mtu: Int
    }

    /// The short name, e.g. `esp32-esp-at`; `--board NAME` finds `boards/NAME.json`.
    public var name: String
    /// One line for people.
    public var description: String
    /// How the host reaches the board: `slip` or `at`.
    public var link: Link
    /// Set for `at` boards, nil for `slip` boards.
    public var dialect: ATDialect?
    /// Serial defaults (always 8N1).
    public var serial: SerialConfiguration
    /// Set for `slip` boards, nil for `at` boards.
    public var slip: SLIPSettings?
    /// The default `buffer` option for sockets to this board.
    public var buffer: Int
    /// Connections the board can hold at once.
    public var maxLinks: Int
    /// The largest single send the board takes.
    public var largestSend: Int
    /// The cellular access point name, for modems that need one.
    public var apn: String?
    /// Time added to every modem command's timeout (`latency`, at boards only; default
    /// 0): for a module slower than its documents. The timeouts themselves come from the
    /// dialect's documented latency and the line's baud rate.
    public var latency: Milliseconds = 0
    /// True for the simulated boards `gentcp simulate` can run.
    public var simulated: Bool
    /// The file the profile was read from.
    public var source: String

    /// Reads and checks one profile file.
    /// - Throws: ``BoardProfileError`` naming the file, the field and what is wrong.
    public static func load(path: String) throws(BoardProfileError) -> BoardProfile {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw BoardProfileError(file: path, field: nil, problem: exists ? "cannot be read" : "no such file")
        }
        return try parse(data, source: path)
    }

    /// Finds a profile by name in `directory` (`NAME.json`), or reads `nameOrPath` as a file
    /// path when it names one (it ends in `.json` or contains a `/`).
    /// - Throws: ``BoardProfileError``: no such board (the message lists the known ones), or
    ///   what ``load(path:)`` throws.
    public static func find(_ nameOrPath: String, in directory: String = "boards") throws(BoardProfileError) -> BoardProfile {
        if nameOrPath.hasSuffix(".json") || nameOrPath.contains("/") {
            return try load(path: nameOrPath)
        }
        let path = directory + "/" + nameOrPath + ".json"
        guard FileManager.default.fileExists(atPath: path) else {
            let known = (try? FileManager.default.contentsOfDirectory(atPath: directory))?
                .filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted() ?? []
            throw BoardProfileError(file: path, field: nil,
                                    problem: "no board named \"\(nameOrPath)\"" + (known.isEmpty ? "" : "; known: " + known.joined(separator: ", ")))
        }
        return try load(path: path)
    }

    /// Every profile in `directory`, in name order, each loaded or failed on its own.
    public static func all(in directory: String = "boards") -> [Result<BoardProfile, BoardProfileError>] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".json") }.sorted()
        return files.map { file in
            do throws(BoardProfileError) {
                return .success(try load(path: directory + "/" + file))
            } catch {
                return .failure(error)
            }
        }
    }

    /// Parses a profile from JSON bytes; `source` names it in errors.
    /// - Throws: ``BoardProfileError`` for invalid JSON, a missing, unknown or bad field, or a
    ///   field that does not go with the board's `link`.
    public static func parse(_ data: Data, source: String) throws(BoardProfileError) -> BoardProfile {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw BoardProfileError(file: source, field: nil, problem: "not valid JSON (\(error.localizedDescription))")
        }
        var reader = FieldReader(file: source)
        return try reader.profile(root)
    }
}

/// A bad profile: which file, which field, what is wrong. Prints as
/// `boards/x.json: serial.baud: expected an integer 50...4000000, got "fast"`.
public struct BoardProfileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The profile's path (or the `source` given to ``BoardProfile/parse(_:source:)``).
    public var file: String
    /// The dotted field path (`serial.baud`), or nil for the file as a whole.
    public var field: String?
    /// What is wrong, e.g. `expected an integer 50...4000000, got "fast"`.
    public var problem: String

    /// `file: field: problem`, or `file: problem` for the file as a whole.
    public var description: String {
        if let field { return "\(file): \(field): \(problem)" }
        return "\(file): \(problem)"
    }
}

/// Reads fields out of the decoded JSON with messages that name them.
private struct FieldReader {
    let file: String

    func fail(_ field: String?, _ problem: String) -> BoardProfileError {
        BoardProfileError(file: file, field: field, problem: problem)
    }

    static func show(_ value: Any) -> String {
        if let s = value as? String { return "\"\(s)\"" }
        if value is NSNull { return "null" }
        if let d = value as? [String: Any] { return "an object with \(d.count) fields" }
        if let a = value as? [Any] { return "a list of \(a.count)" }
        return "\(value)"
    }

    /// JSONSerialization gives NSNumber for numbers and booleans alike (and `as? Bool` accepts
    /// 0 and 1); `true`/`false` come as the boolean subclass, so compare classes.
    static func isBool(_ value: Any) -> Bool {
        ObjectIdentifier(type(of: value as AnyObject)) == booleanClass
    }
    static let booleanClass = ObjectIdentifier(type(of: NSNumber(value: true)))

    func object(_ value: Any, _ field: String?) throws(BoardProfileError) -> [String: Any] {
        guard let d = value as? [String: Any] else {
            throw fail(field, "expected an object, got \(FieldReader.show(value))")
        }
        return d
    }

    func checkKeys(_ d: [String: Any], allowed: [String], prefix: String) throws(BoardProfileError) {
        for key in d.keys.sorted() where !allowed.contains(key) {
            throw fail(prefix + key, "unknown field (known: \(allowed.joined(separator: ", ")))")
        }
    }

    func string(_ d: [String: Any], _ key: String, _ path: String, required: Bool = true) throws(BoardProfileError) -> String? {
        guard let v = d[key] else {
            if required { throw fail(path, "missing (a string is required)") }
            return nil
        }
        guard let s = v as? String, !FieldReader.isBool(v) else {
            throw fail(path, "expected a string, got \(FieldReader.show(v))")
        }
        guard !s.isEmpty else { throw fail(path, "must not be empty") }
        return s
    }

    func integer(_ d: [String: Any], _ key: String, _ path: String, _ range: ClosedRange<Int>) throws(BoardProfileError) -> Int {
        guard let v = d[key] else { throw fail(path, "missing (an integer \(range) is required)") }
        guard !FieldReader.isBool(v), let n = v as? NSNumber, let i = Int(exactly: n.doubleValue), range.contains(i) else {
            throw fail(path, "expected an integer \(range.lowerBound)...\(range.upperBound), got \(FieldReader.show(v))")
        }
        return i
    }

    func choice<E: RawRepresentable & CaseIterable>(_ d: [String: Any], _ key: String, _ path: String, _: E.Type) throws(BoardProfileError) -> E where E.RawValue == String {
        let s = try string(d, key, path)!
        guard let e = E(rawValue: s) else {
            throw fail(path, "expected one of \(E.allCases.map { $0.rawValue }.joined(separator: ", ")), got \"\(s)\"")
        }
        return e
    }

    func address(_ d: [String: Any], _ key: String, _ path: String) throws(BoardProfileError) -> IPAddress {
        let s = try string(d, key, path)!
        guard let a = IPAddress(s) else { throw fail(path, "expected an IPv4 address, got \"\(s)\"") }
        guard !a.isIPv6 else { throw fail(path, "SLIP carries IPv4 only, got \"\(s)\"") }
        return a
    }

    mutating func profile(_ root: Any) throws(BoardProfileError) -> BoardProfile {
        let d = try object(root, nil)
        try checkKeys(d, allowed: ["name", "description", "link", "dialect", "serial", "slip", "buffer", "limits", "apn",
                                   "latency", "simulated"], prefix: "")
        let name = try string(d, "name", "name")!
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw fail("name", "use letters, digits, - and _ only, got \"\(name)\"")
        }
        let description = try string(d, "description", "description")!
        let link = try choice(d, "link", "link", BoardProfile.Link.self)

        var dialect: ATDialect?
        if link == .at {
            let name = try string(d, "dialect", "dialect")!
            guard let parsed = ATDialect(name: name) else {
                throw fail("dialect", "expected one of \(ATDialect.allCases.map(\.description).joined(separator: ", ")), got \"\(name)\"")
            }
            dialect = parsed
        } else if d["dialect"] != nil {
            throw fail("dialect", "only for link \"at\"; a slip board has no AT dialect")
        }

        guard let serialValue = d["serial"] else { throw fail("serial", "missing (an object with baud and flowControl)") }
        let serialObject = try object(serialValue, "serial")
        try checkKeys(serialObject, allowed: ["baud", "flowControl"], prefix: "serial.")
        let baud = try integer(serialObject, "baud", "serial.baud", 50...4_000_000)
        var flow = FlowControl.none
        if serialObject["flowControl"] != nil {
            flow = try choice(serialObject, "flowControl", "serial.flowControl", FlowControl.self)
        }

        var slip: BoardProfile.SLIPSettings?
        if link == .slip {
            guard let slipValue = d["slip"] else { throw fail("slip", "missing (link \"slip\" needs localAddress, peerAddress and mtu)") }
            let s = try object(slipValue, "slip")
            try checkKeys(s, allowed: ["localAddress", "peerAddress", "mtu"], prefix: "slip.")
            let local = try address(s, "localAddress", "slip.localAddress")
            let peer = try address(s, "peerAddress", "slip.peerAddress")
            guard local != peer else { throw fail("slip.peerAddress", "must differ from slip.localAddress") }
            let mtu = try integer(s, "mtu", "slip.mtu", 68...65535)
            slip = BoardProfile.SLIPSettings(localAddress: local, peerAddress: peer, mtu: mtu)
        } else if d["slip"] != nil {
            throw fail("slip", "only for link \"slip\"")
        }

        let buffer = try integer(d, "buffer", "buffer", 1...SocketOptions.maximumBuffer)
        guard let limitsValue = d["limits"] else { throw fail("limits", "missing (an object with links and largestSend)") }
        let limits = try object(limitsValue, "limits")
        try checkKeys(limits, allowed: ["links", "largestSend"], prefix: "limits.")
        let links = try integer(limits, "links", "limits.links", 1...64)
        let largestSend = try integer(limits, "largestSend", "limits.largestSend", 1...(1 << 24))

        let apn = try string(d, "apn", "apn", required: false)
        if let apn, apn.contains(where: { $0 == "\"" || $0 == "," || $0.asciiValue.map { $0 < 0x20 } ?? false }) {
            throw fail("apn", "must not contain quotes, commas or control characters (it goes into an AT command)")
        }
        var latency = 0
        if d["latency"] != nil {
            guard link == .at else { throw fail("latency", "only for link \"at\" (modem command timeouts)") }
            latency = try integer(d, "latency", "latency", 0...600_000)
        }
        var simulated = false
        if let v = d["simulated"] {
            guard FieldReader.isBool(v), let b = v as? Bool else {
                throw fail("simulated", "expected true or false, got \(FieldReader.show(v))")
            }
            simulated = b
        }
        var profile = BoardProfile(
            name: name, description: description, link: link, dialect: dialect,
            serial: SerialConfiguration(baudRate: baud, flowControl: flow), slip: slip, buffer: buffer,
            maxLinks: links, largestSend: largestSend, apn: apn, simulated: simulated, source: file)
        profile.latency = Milliseconds(Int64(latency))
        return profile
    }
}

extension ATDialect {
    /// The dialect named `name` (`esp-at`, `sim800` or `bg96`, as ``description`` spells them),
    /// or nil.
    public init?(name: String) {
        guard let found = ATDialect.allCases.first(where: { $0.description == name }) else { return nil }
        self = found
    }
}
