import Testing
import GenTCPModem

/// Strings that would end the quoted parameter, start a new command, or escape (ESP-AT treats
/// `\` as an escape inside strings). Each must be refused before a byte is produced.
@Suite("No AT injection")
struct InjectionTests {
    static let hostile: [String] = [
        "evil.com\",80\r\nAT+RST",
        "a,b",
        "line\r",
        "line\nAT",
        "nul\u{0}byte",
        "esc\u{1B}",
        "del\u{7F}",
        "tab\tin",
        "trailing\\",
        "quote\"",
        "",
        String(repeating: "a", count: 200),
    ]

    static func commands(_ value: String) -> [ModemCommand] {
        [
            .connect(link: 0, host: value, port: 80),
            .resolve(host: value),
            .joinNetwork(ssid: value, password: "ok"),
            .joinNetwork(ssid: "ok", password: value.isEmpty ? "\"" : value),
            .configureBearer(apn: value, user: "", password: ""),
            .configureBearer(apn: "apn", user: value.isEmpty ? "," : value, password: ""),
            .configureBearer(apn: "apn", user: "", password: value.isEmpty ? "\r" : value),
        ]
    }

    @Test("hostile strings are einval for every dialect, with nothing written", arguments: hostile)
    func hostileStrings(_ value: String) {
        let dialects: [StandardDialect] = [.espAT(ESPATDialect()), .sim800(SIM800Dialect()), .bg96(BG96Dialect())]
        for dialect in dialects {
            for command in Self.commands(value) {
                // SIM800's AT+CSTT with no APN, user or password at all is the module's default
                // APN (the execution form): nothing to inject. Checked below.
                if case .sim800 = dialect, case .configureBearer("", "", "") = command { continue }
                var engine = ModemEngine(dialect: dialect)
                do throws(ModemError) {
                    try engine.submit(command, now: at(0))
                    Issue.record("accepted \(command.kind) with \(value.debugDescription)")
                } catch {
                    #expect(error.reason == .invalidArgument || error.reason == .notSupported)
                }
                #expect(engine.pendingOutputCount == 0)
                #expect(engine.isIdle == true)
            }
        }
    }

    @Test("SIM800 without an APN starts the task with the module's default (AT+CSTT, no parameters); BG96 refuses an empty APN")
    func emptyAPN() throws {
        var sim = ModemEngine(dialect: SIM800Dialect())
        try sim.submit(.configureBearer(apn: "", user: "", password: ""), now: at(0))
        #expect(written(&sim) == "AT+CSTT\r")
        var sim2 = ModemEngine(dialect: SIM800Dialect())
        #expect(throws: ModemError(.invalidArgument)) {
            try sim2.submit(.configureBearer(apn: "", user: "me", password: ""), now: at(0))
        }
        var bg = ModemEngine(dialect: BG96Dialect())
        #expect(throws: ModemError(.invalidArgument)) {
            try bg.submit(.configureBearer(apn: "", user: "", password: ""), now: at(0))
        }
    }

    @Test("host length limits: ESP-AT 64 bytes, cellular 128")
    func hostLength() throws {
        var esp = ModemEngine(dialect: ESPATDialect())
        try esp.submit(.resolve(host: String(repeating: "a", count: 64)), now: at(0))
        var esp2 = ModemEngine(dialect: ESPATDialect())
        #expect(throws: ModemError(.invalidArgument)) {
            try esp2.submit(.resolve(host: String(repeating: "a", count: 65)), now: at(0))
        }
        var bg = ModemEngine(dialect: BG96Dialect())
        try bg.submit(.resolve(host: String(repeating: "a", count: 128)), now: at(0))
        var bg2 = ModemEngine(dialect: BG96Dialect())
        #expect(throws: ModemError(.invalidArgument)) {
            try bg2.submit(.resolve(host: String(repeating: "a", count: 129)), now: at(0))
        }
    }

    @Test("ordinary names, UTF-8 SSIDs and empty passwords pass")
    func ordinaryStrings() throws {
        var engine = ModemEngine(dialect: ESPATDialect())
        try engine.submit(.joinNetwork(ssid: "Café-Lab", password: ""), now: at(0))
        var out = ""
        engine.withPendingOutput { out = String(decoding: $0, as: UTF8.self); return $0.count }
        #expect(out == "AT+CWJAP=\"Café-Lab\",\"\"\r\n")
    }

    @Test("the validator itself")
    func validator() throws {
        #expect(try ModemValidation.check("example.com", maxLength: 64) == 11)
        #expect(throws: ModemError(.invalidArgument)) { try ModemValidation.check("", maxLength: 64) }
        #expect(try ModemValidation.check("", maxLength: 64, allowEmpty: true) == 0)
    }
}
