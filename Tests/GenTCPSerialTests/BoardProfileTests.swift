import Foundation
import GenTCPCore
import GenTCPSerial
import Testing

/// The repository's `boards/` folder, found from this file's path.
private let boardsDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("boards").path
}()

@Suite("Board profiles")
struct BoardProfileTests {
    @Test("every shipped profile loads, and the required boards are there")
    func shippedProfilesLoad() throws {
        var names: [String] = []
        for result in BoardProfile.all(in: boardsDirectory) {
            let profile = try result.get()
            names.append(profile.name)
            #expect(profile.source.hasSuffix("/\(profile.name).json"), "file name must match name: \(profile.source)")
            switch profile.link {
            case .at: #expect(profile.dialect != nil && profile.slip == nil)
            case .slip: #expect(profile.dialect == nil && profile.slip != nil)
            }
        }
        for required in ["esp32-esp-at", "esp8266-esp-at", "sim800l", "quectel-bg96", "lwip-slip",
                         "sim-esp-at", "sim-sim800", "sim-bg96", "sim-slip", "qemu-mps2-an386", "qemu-riscv-virt"] {
            #expect(names.contains(required), "missing board \(required)")
        }
    }

    @Test("fields are read as written")
    func fieldsOfOneProfile() throws {
        let esp = try BoardProfile.find("esp32-esp-at", in: boardsDirectory)
        #expect(esp.link == .at && esp.dialect == .espAT)
        #expect(esp.serial.baudRate == 115_200 && esp.serial.flowControl == .none)
        #expect(esp.buffer == 2048 && esp.maxLinks == 5 && esp.largestSend == 8192 && !esp.simulated)
        let slip = try BoardProfile.find("lwip-slip", in: boardsDirectory)
        #expect(slip.slip?.mtu == 296)
        #expect(slip.slip?.peerAddress == IPAddress("10.10.0.2"))
        let bg96 = try BoardProfile.find(boardsDirectory + "/quectel-bg96.json")
        #expect(bg96.serial.flowControl == .rtsCts && bg96.apn == "internet")
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var json: String
        var field: String?
        var mentions: String
        var testDescription: String { "\(field ?? "file"): \(mentions)" }
    }

    static let valid = #"""
    {"name": "b", "description": "d", "link": "at", "dialect": "esp-at",
     "serial": {"baud": 115200}, "buffer": 1024, "limits": {"links": 1, "largestSend": 64}}
    """#

    static let bad: [Bad] = [
        Bad(json: "{", field: nil, mentions: "not valid JSON"),
        Bad(json: "[1, 2]", field: nil, mentions: "expected an object"),
        Bad(json: valid.replacingOccurrences(of: "115200", with: "\"fast\""), field: "serial.baud", mentions: "expected an integer 50...4000000, got \"fast\""),
        Bad(json: valid.replacingOccurrences(of: "115200", with: "20"), field: "serial.baud", mentions: "got 20"),
        Bad(json: valid.replacingOccurrences(of: "\"esp-at\"", with: "\"esp32\""), field: "dialect", mentions: "expected one of esp-at, sim800, bg96"),
        Bad(json: valid.replacingOccurrences(of: "\"link\": \"at\"", with: "\"link\": \"usb\""), field: "link", mentions: "expected one of slip, at"),
        Bad(json: valid.replacingOccurrences(of: "\"buffer\": 1024", with: "\"buffer\": 0"), field: "buffer", mentions: "expected an integer 1...16777216"),
        Bad(json: valid.replacingOccurrences(of: "\"buffer\": 1024,", with: ""), field: "buffer", mentions: "missing"),
        Bad(json: valid.replacingOccurrences(of: "\"baud\": 115200", with: "\"baud\": 115200, \"baudrate\": 9600"), field: "serial.baudrate", mentions: "unknown field"),
        Bad(json: valid.replacingOccurrences(of: "\"link\": \"at\"", with: "\"link\": \"slip\""), field: "dialect", mentions: "only for link \"at\""),
        Bad(json: valid.replacingOccurrences(of: "\"link\": \"at\", \"dialect\": \"esp-at\"", with: "\"link\": \"slip\""), field: "slip", mentions: "missing"),
        Bad(json: valid.replacingOccurrences(of: "\"link\": \"at\", \"dialect\": \"esp-at\"",
                                             with: "\"link\": \"slip\", \"slip\": {\"localAddress\": \"10.1.1.1\", \"peerAddress\": \"::1\", \"mtu\": 1500}"),
            field: "slip.peerAddress", mentions: "IPv4 only"),
        Bad(json: valid.replacingOccurrences(of: "\"name\": \"b\"", with: "\"name\": \"a b\""), field: "name", mentions: "letters, digits"),
        Bad(json: valid.replacingOccurrences(of: "\"limits\"", with: "\"apn\": \"x\\\",y\", \"limits\""), field: "apn", mentions: "AT command"),
        Bad(json: valid.replacingOccurrences(of: "\"limits\"", with: "\"simulated\": 1, \"limits\""), field: "simulated", mentions: "expected true or false"),
        Bad(json: valid.replacingOccurrences(of: "{\"links\": 1,", with: "{\"links\": \"one\","), field: "limits.links", mentions: "expected an integer"),
        Bad(json: valid.replacingOccurrences(of: "\"limits\"", with: "\"latency\": -5, \"limits\""), field: "latency", mentions: "expected an integer 0...600000"),
        Bad(json: valid.replacingOccurrences(of: "\"link\": \"at\", \"dialect\": \"esp-at\"",
                                             with: "\"link\": \"slip\", \"latency\": 100, \"slip\": {\"localAddress\": \"10.1.1.1\", \"peerAddress\": \"10.1.1.2\", \"mtu\": 1500}"),
            field: "latency", mentions: "only for link \"at\""),
    ]

    @Test("a bad profile names the file, the field and what is wrong", arguments: bad)
    func badProfile(_ bad: Bad) {
        do {
            _ = try BoardProfile.parse(Data(bad.json.utf8), source: "boards/test.json")
            Issue.record("accepted: \(bad.json)")
        } catch {
            #expect(error.file == "boards/test.json")
            #expect(error.field == bad.field, "\(error)")
            #expect(error.problem.contains(bad.mentions), "\(error)")
            #expect("\(error)".hasPrefix("boards/test.json: " + (bad.field.map { "\($0): " } ?? "")))
        }
    }

    @Test("the valid template itself parses (so each bad case fails for its own reason)")
    func validTemplate() throws {
        let p = try BoardProfile.parse(Data(Self.valid.utf8), source: "t.json")
        #expect(p.name == "b" && p.serial.flowControl == .none && !p.simulated && p.latency == 0)
        let slow = try BoardProfile.parse(Data(Self.valid.replacingOccurrences(of: "\"limits\"", with: "\"latency\": 1500, \"limits\"").utf8),
                                          source: "t.json")
        #expect(slow.latency == 1_500)
    }

    @Test("a missing board or file is a clear error")
    func missing() {
        #expect(throws: BoardProfileError.self) { try BoardProfile.find("no-such-board", in: boardsDirectory) }
        do {
            _ = try BoardProfile.find("no-such-board", in: boardsDirectory)
        } catch {
            #expect(error.problem.contains("no board named \"no-such-board\"") && error.problem.contains("esp32-esp-at"))
        }
        do {
            _ = try BoardProfile.load(path: "/nonexistent/x.json")
        } catch {
            #expect("\(error)" == "/nonexistent/x.json: no such file")
        }
    }
}
