// Fuzz harness for GenTCPModem: random module output, in random chunk sizes, into the lexer and
// the engine of each dialect, with a scripted driver submitting commands in between.
//
// Run with `tools/fuzz.sh at SECONDS`, which builds GenTCPModem as its own module and links this
// harness against it; it uses only the public API. It also builds as one module with the sources:
//   swiftc -sanitize=fuzzer,address -parse-as-library Sources/GenTCPModem/*.swift tools/fuzz/at/main.swift -o fuzz-at
//
// Invariants checked (a violation traps, which libFuzzer reports as a crash):
// * lexer: every payload piece lies inside the input, is at most the piece size, and the pieces
//   of a header add up to exactly its length (never more); no line exceeds the maximum; the
//   token stream (lines, prompts, headers, payload bytes) is the same however the input is cut;
// * engine: `invariantViolation()` is nil after every step (buffer sizes unchanged, indices in
//   order, no payload beyond its announced length, prompt expectation in step with the command),
//   received bytes lie inside the input and name a valid link, the event queue never overflows;
//   a datagram's pieces never add up to more than its announced length, and the next datagram
//   starts only after that (or after a reset, a timeout or a framing error broke it off).

#if canImport(GenTCPModem)
import GenTCPCore
import GenTCPModem
#endif

/// FNV-1a over a token stream; the cheap way to compare two cuttings without storing tokens.
struct StreamHash {
    var value: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func add(_ byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }
    mutating func add(_ bytes: UnsafeRawBufferPointer) { for b in bytes { add(b) } }
    mutating func add(_ n: Int) { for i in 0..<8 { add(UInt8(truncatingIfNeeded: n >> (i * 8))) } }
}

func check(_ condition: Bool, _ message: StaticString) {
    if !condition { fatalError("\(message)") }
}

/// Lexes `input` cut into chunks whose sizes come from `sizes`, checking every token. Returns
/// the hash of the token stream.
func lexAll(_ input: UnsafeRawBufferPointer, sizes: UnsafeRawBufferPointer, framing: ATFraming, prompt: Bool) -> UInt64 {
    var lexer = ATLexer(configuration: .init(maxLineLength: 64, maxPayloadLength: 600, maxPieceLength: 13, framing: framing))
    lexer.expectsPrompt = prompt
    var hash = StreamHash()
    var announced = -1
    var delivered = 0
    var offset = 0
    var sizeIndex = 0
    while offset < input.count {
        var n = input.count - offset
        if sizes.count > 0 {
            n = min(n, Int(sizes[sizeIndex % sizes.count]) % 29 + 1)
            sizeIndex += 1
        }
        let chunk = UnsafeRawBufferPointer(rebasing: input[offset..<(offset + n)])
        var cursor = 0
        while let token = lexer.next(chunk, cursor: &cursor) {
            switch token {
            case .line:
                lexer.withLine { line in
                    check(line.count > 0 && line.count <= 64, "line length out of bounds")
                    hash.add(1)
                    hash.add(line.bytes)
                }
            case .prompt:
                check(prompt, "prompt while none expected")
                hash.add(2)
            case .payloadStart(let header):
                check(announced < 0, "payload started inside a payload")
                check(header.length >= 0 && header.length <= 600, "announced length out of bounds")
                announced = header.length
                delivered = 0
                hash.add(3)
                hash.add(header.length)
                hash.add(header.link ?? -1)
                if let remote = header.remote {
                    check(remote.port >= 0 && remote.port <= 65_535, "sender port out of range")
                    hash.add(remote.port)
                    switch remote.address {
                    case .ipv4(let v): hash.add(Int(v))
                    case .ipv6(let high, let low): hash.add(Int(truncatingIfNeeded: high)); hash.add(Int(truncatingIfNeeded: low))
                    }
                }
            case .payload(let piece):
                check(announced >= 0, "payload outside a payload")
                check(piece.count > 0 && piece.count <= 13, "piece size out of bounds")
                check(piece.baseAddress! >= chunk.baseAddress! && piece.baseAddress! + piece.count <= chunk.baseAddress! + chunk.count,
                      "piece outside the input")
                delivered += piece.count
                check(delivered <= announced, "payload beyond the announced length")
                hash.add(piece)
            case .payloadEnd:
                check(delivered == announced, "payload ended short")
                announced = -1
                hash.add(4)
            case .error(let error):
                hash.add(5)
                switch error {
                case .lineTooLong: hash.add(0)
                case .malformedHeader: hash.add(1)
                case .payloadTooLong(let n):
                    check(n > 600, "rejected a length within the maximum")
                    hash.add(n)
                }
            }
            if let violation = lexer.invariantViolation() { fatalError("\(violation)") }
        }
        check(cursor == chunk.count, "input not consumed")
        offset += n
    }
    // An unfinished payload may remain; hash what is known.
    hash.add(lexer.payloadRemaining)
    return hash.value
}

/// Drives an engine: the script bytes choose driver actions, the module bytes are its output.
func drive<D: ModemDialect>(_ dialect: D, script: UnsafeRawBufferPointer, module: UnsafeRawBufferPointer) {
    var configuration = ModemConfiguration()
    configuration.maxLineLength = 80
    configuration.maxSendChunk = 64
    configuration.maxResponseBytes = 96
    configuration.maxResponseLines = 4
    configuration.maxPieceLength = 11
    configuration.busyRetryDelay = 50
    configuration.maxBusyRetries = 2
    var engine = ModemEngine(dialect: dialect, configuration: configuration)
    var now: UInt64 = 0
    var moduleOffset = 0
    var s = 0
    var payload = [UInt8](repeating: 0x5A, count: 100)
    payload[0] = 0x3E

    func byte() -> Int {
        guard script.count > 0 else { return 0 }
        defer { s += 1 }
        return Int(script[s % script.count])
    }
    // The datagram being handed out: its link, announced length and pieces so far.
    var datagram: (link: Int, length: Int, got: Int)?
    func handle(_ event: ModemEvent, _ input: UnsafeRawBufferPointer?) {
        switch event {
        case .datagram(let link, let length, let remote):
            check(link >= 0 && link < engine.linkCount && engine.isDatagramLink(link), "datagram on a link that is not UDP")
            check(length >= 0 && length <= 8192, "datagram length out of bounds")
            if let remote { check(remote.port >= 0 && remote.port <= 65_535, "sender port out of range") }
            datagram = (link, length, 0)
        case .moduleReset, .framingError:
            datagram = nil
        case .received(let link, let bytes):
            if let d = datagram, d.link == link {
                check(d.got + bytes.count <= d.length, "datagram pieces beyond its length")
                datagram = (d.link, d.length, d.got + bytes.count)
            }
            check(link >= 0 && link < engine.linkCount, "received on an invalid link")
            check(bytes.count > 0 && bytes.count <= 11, "piece size out of bounds")
            if let input {
                check(bytes.baseAddress! >= input.baseAddress! && bytes.baseAddress! + bytes.count <= input.baseAddress! + input.count,
                      "received bytes outside the input")
            }
        case .connected(let link), .closed(let link), .connectFailed(let link, _), .dataAvailable(let link, _):
            check(link >= 0 && link < engine.linkCount, "event on an invalid link")
        case .unrecognisedLine:
            engine.withLastLine { check($0.count <= 80, "line too long") }
        case .commandCompleted:
            for i in 0..<engine.responseLineCount { _ = engine.withResponseLine(i) { $0.count } }
        default:
            break
        }
        if let violation = engine.invariantViolation() { fatalError("\(violation)") }
    }

    var steps = 0
    let maxSteps = 2 * (module.count + script.count) + 16
    while (moduleOffset < module.count || s < script.count) && steps < maxSteps {
        steps += 1
        let op = byte() % 8
        switch op {
        case 0, 1, 2:
            // The module speaks: a chunk of 1...32 bytes.
            let n = min(module.count - moduleOffset, byte() % 32 + 1)
            guard n > 0 else { continue }
            let chunk = UnsafeRawBufferPointer(rebasing: module[moduleOffset..<(moduleOffset + n)])
            moduleOffset += n
            var cursor = 0
            while let event = engine.nextEvent(reading: chunk, cursor: &cursor, now: MillisecondInstant(milliseconds: Int64(clamping: now))) {
                handle(event, chunk)
            }
            check(cursor == chunk.count, "input not consumed")
        case 3:
            let link = byte() % 14 - 1
            let commands: [ModemCommand] = [
                .probe, .echoOff, .version, .enableMultiplexing, .enablePassiveReceive,
                .connect(link: link, host: "example.com", port: 80),
                .read(link: link, maximum: byte() * 8 + 1),
                .queryAvailable(link: link), .close(link: link), .resolve(host: "example.com"),
                .localAddress, .restart, .activateBearer, .configureBearer(apn: "apn", user: "", password: ""),
                .connect(link: link, host: "a\"b", port: 1), .raw("AT+CSQ"),
                .openDatagram(link: link, host: "0.0.0.0", port: 0, localPort: byte() * 200 + 1),
                .openDatagram(link: link, host: "10.0.0.1", port: byte() * 250, localPort: byte() * 250),
                .enableRemoteInfo, .bindLocalPort(link: link, port: byte() * 250),
                .setReceiveMode(link: link, passive: byte() & 1 == 0),
            ]
            try? engine.submit(commands[byte() % commands.count], now: MillisecondInstant(milliseconds: Int64(clamping: now)))
        case 4:
            let link = byte() % 13
            let count = byte() % 100
            let kind = byte() % 3
            let to: ModemEndpoint? = kind == 0 ? nil : ModemEndpoint(address: .ipv4(UInt32(byte()) << 24 | 1), port: byte() * 260)
            payload.withUnsafeBytes { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                let instant = MillisecondInstant(milliseconds: Int64(clamping: now))
                if kind == 2 {
                    try? engine.sendDatagram(bytes, link: link, to: to, now: instant)
                } else {
                    _ = try? engine.send(bytes, link: link, now: instant)
                }
            }
        case 5:
            now += UInt64(byte()) * UInt64(byte() + 1) * 7
            while let event = engine.nextEvent(now: MillisecondInstant(milliseconds: Int64(clamping: now))) { handle(event, nil) }
        default:
            // The driver writes some or all of the output.
            let limit = byte() % 3 == 0 ? byte() % 8 : Int.max
            let capacity = engine.outputCapacity
            engine.withPendingOutput { bytes in
                check(bytes.count <= capacity, "output beyond capacity")
                return min(bytes.count, limit)
            }
        }
        if let violation = engine.invariantViolation() { fatalError("\(violation)") }
        check(engine.statistics.droppedEvents == 0, "events dropped")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let all = UnsafeRawBufferPointer(start: data, count: size)
    let control = Int(all[0])
    // The first byte says where the script ends; the rest is the module's output.
    let split = 1 + min(size - 1, (control >> 2) % 24)
    let script = UnsafeRawBufferPointer(rebasing: all[1..<split])
    let module = UnsafeRawBufferPointer(rebasing: all[split...])

    // Lexer: all header kinds; the same tokens whole and cut by the script's sizes.
    let framings: [ATFraming] = [[.ipd, .cipRecvData], [.ipd, .cipRecvData, .cipRecvDataRemoteInfo], [.qird], [.cipRxGet, .ipd, .receive]]
    let framing = framings[control & 3]
    let prompt = control & 0x40 != 0
    let whole = lexAll(module, sizes: UnsafeRawBufferPointer(rebasing: all[0..<0]), framing: framing, prompt: prompt)
    let cut = lexAll(module, sizes: script, framing: framing, prompt: prompt)
    check(whole == cut, "token stream depends on how the input is cut")

    // Engine: each dialect.
    switch control & 3 {
    case 0: drive(ESPATDialect(), script: script, module: module)
    case 1: drive(ESPATDialect(remoteInfo: true), script: script, module: module)
    case 2: drive(BG96Dialect(), script: script, module: module)
    default: drive(SIM800Dialect(), script: script, module: module)
    }
    return 0
}
