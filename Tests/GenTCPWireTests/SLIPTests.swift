import Testing
import GenTCPWire

/// RFC 1055 encodings worked out by hand from the RFC's rules (END 0xC0, ESC 0xDB, ESC_END 0xDC,
/// ESC_ESC 0xDD, END before and after), each checked once against an independent Python encoder.
let slipVectors: [(frame: [UInt8], line: [UInt8])] = [
    ([], hex("c0c0")),
    ([0x01], hex("c001c0")),
    ([0xC0], hex("c0dbdcc0")),
    ([0xDB], hex("c0dbddc0")),
    ([0x01, 0xC0, 0xDB, 0x02], hex("c001dbdcdbdd02c0")),
    ([0xDB, 0xDC], hex("c0dbdddcc0")),
    ([0xC0, 0xC0], hex("c0dbdcdbdcc0")),
    ([0xDC, 0xDD], hex("c0dcddc0")),
]

/// Decodes `chunks` in order and returns the frames and the decoder's counters.
func decodeAll(
    _ chunks: [[UInt8]], maximumFrameSize: Int = 64
) -> (frames: [[UInt8]], decoded: UInt64, escapeErrors: UInt64, overflows: UInt64) {
    var decoder = SLIPDecoder(maximumFrameSize: maximumFrameSize)
    var frames: [[UInt8]] = []
    for chunk in chunks {
        chunk.withUnsafeBytes { bytes in decoder.decode(bytes) { frames.append(Array($0)) } }
    }
    return (frames, decoder.framesDecoded, decoder.escapeErrors, decoder.overflows)
}

/// Encodes `frame` with the resumable encoder, offering `space(i)` bytes on call i.
func streamEncode(_ frame: [UInt8], space: (Int) -> Int) -> [UInt8] {
    var encoder = SLIPEncoder()
    var line: [UInt8] = []
    var call = 0
    frame.withUnsafeBytes { input in
        while !encoder.isComplete {
            var chunk = [UInt8](repeating: 0, count: space(call))
            let n = chunk.withUnsafeMutableBytes { encoder.encode(input, into: $0) }
            line += chunk[0..<n]
            call += 1
        }
    }
    return line
}

@Suite("SLIP encoding")
struct SLIPEncodingTests {
    @Test("one-shot encoding matches the RFC 1055 vectors", arguments: slipVectors)
    func oneShot(frame: [UInt8], line: [UInt8]) throws {
        let length = frame.withUnsafeBytes { SLIP.encodedLength(of: $0) }
        #expect(length == line.count)
        let (written, out) = try withScratch(count: line.count + 3) { out in
            try frame.withUnsafeBytes { input in try SLIP.encode(input, into: out) }
        }
        #expect(written == line.count)
        #expect(Array(out[0..<written]) == line)
        #expect(out[written...].allSatisfy { $0 == 0xEE }, "nothing written past the encoding")
    }

    @Test("one-shot encoding refuses a buffer one byte short and writes nothing", arguments: slipVectors)
    func oneShotTooSmall(frame: [UInt8], line: [UInt8]) {
        var out = [UInt8](repeating: 0xEE, count: line.count - 1)
        let error = wireError {
            try frame.withUnsafeBytes { input in
                try out.withUnsafeMutableBytes { buffer in try SLIP.encode(input, into: buffer) }
            }
        }
        #expect(error == .bufferTooSmall)
        #expect(out.allSatisfy { $0 == 0xEE })
    }

    @Test("callback encoding hands out the same bytes, plain runs uncopied", arguments: slipVectors)
    func callback(frame: [UInt8], line: [UInt8]) {
        var collected: [UInt8] = []
        frame.withUnsafeBytes { input in SLIP.encode(input) { collected += $0 } }
        #expect(collected == line)
    }

    @Test("callback chunks: END, runs of plain bytes straight from the frame, escape pairs")
    func callbackChunks() {
        let frame: [UInt8] = [0x61, 0x62, 0xC0, 0x63, 0xDB]
        var chunks: [[UInt8]] = []
        var pointsIntoFrame: [Bool] = []
        frame.withUnsafeBytes { input in
            SLIP.encode(input) { chunk in
                chunks.append(Array(chunk))
                pointsIntoFrame.append(chunk.baseAddress.map { $0 >= input.baseAddress! && $0 < input.baseAddress! + input.count } ?? false)
            }
        }
        #expect(chunks == [[0xC0], [0x61, 0x62], [0xDB, 0xDC], [0x63], [0xDB, 0xDD], [0xC0]])
        #expect(pointsIntoFrame == [false, true, false, true, false, false])
    }

    @Test("a throwing sink stops the encoding", arguments: [1, 2, 3])
    func callbackThrows(stopAfter: Int) {
        var calls = 0
        let error = wireError {
            try [UInt8](repeating: 0xC0, count: 4).withUnsafeBytes { input in
                try SLIP.encode(input) { (_) throws(WireError) in
                    calls += 1
                    if calls == stopAfter { throw .bufferTooSmall }
                }
            }
        }
        #expect(error == .bufferTooSmall)
        #expect(calls == stopAfter)
    }

    @Test("the resumable encoder gives the same bytes for every output size", arguments: 1...6)
    func resumable(space: Int) {
        for (frame, line) in slipVectors {
            #expect(streamEncode(frame, space: { _ in space }) == line, "space \(space), frame \(hexString(frame))")
        }
    }

    @Test("the resumable encoder survives output that splits every escape pair and includes zero-size calls")
    func resumableSplitsEscapes() {
        let frame: [UInt8] = [0xC0, 0xDB, 0x00, 0xC0]
        let line = hex("c0dbdcdbdd00dbdcc0")
        // 0, 1, 0, 2, 0, 1, ... bytes of space: escapes are cut between their two bytes.
        #expect(streamEncode(frame, space: { $0 % 2 == 0 ? 0 : ($0 % 4 == 1 ? 1 : 2) }) == line)
    }

    @Test("the resumable encoder reports progress, stops when complete, and restarts after reset()")
    func resumableLifecycle() {
        var encoder = SLIPEncoder()
        let frame: [UInt8] = [0x01, 0xC0]
        var out = [UInt8](repeating: 0, count: 3)
        frame.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { buffer in
                #expect(encoder.encode(input, into: buffer) == 3)  // C0 01 DB
                #expect(encoder.frameBytesWritten == 1)
                #expect(!encoder.isComplete)
            }
            #expect(out == [0xC0, 0x01, 0xDB])
            out.withUnsafeMutableBytes { buffer in
                #expect(encoder.encode(input, into: buffer) == 2)  // DC C0
                #expect(encoder.isComplete)
                #expect(encoder.frameBytesWritten == 2)
                #expect(encoder.encode(input, into: buffer) == 0)
            }
            #expect(Array(out[0..<2]) == [0xDC, 0xC0])
            encoder.reset()
            #expect(!encoder.isComplete)
            out.withUnsafeMutableBytes { buffer in
                #expect(encoder.encode(input, into: buffer) == 3)
            }
            #expect(out == [0xC0, 0x01, 0xDB])
        }
    }

    @Test("encoded length bounds")
    func lengths() {
        #expect(SLIP.maximumEncodedLength(forFrameLength: 1006) == 2014)
        let frame = [UInt8](repeating: 0xDB, count: 10)
        #expect(frame.withUnsafeBytes { SLIP.encodedLength(of: $0) } == SLIP.maximumEncodedLength(forFrameLength: 10))
    }
}

@Suite("SLIP decoding")
struct SLIPDecodingTests {
    @Test("every vector decodes back, in one chunk and byte by byte", arguments: slipVectors)
    func vectors(frame: [UInt8], line: [UInt8]) {
        let expected = frame.isEmpty ? [] : [frame]
        #expect(decodeAll([line]).frames == expected)
        #expect(decodeAll(line.map { [$0] }).frames == expected)
    }

    @Test("a stream split at every point decodes the same")
    func everySplit() {
        let frames: [[UInt8]] = [[0x01, 0xC0, 0xDB, 0x02], [0xDB], [0x45, 0x00, 0xC0]]
        let line = frames.flatMap { frame in frame.withUnsafeBytes { input in
            var out: [UInt8] = []
            SLIP.encode(input) { out += $0 }
            return out
        } }
        for split in 0...line.count {
            let result = decodeAll([Array(line[0..<split]), Array(line[split...])])
            #expect(result.frames == frames, "split at \(split)")
            #expect(result.decoded == 3)
        }
    }

    @Test("back-to-back ENDs are empty frames: ignored, not errors")
    func emptyFrames() {
        let result = decodeAll([hex("c0c0c0c0"), hex("c061c0c0c0")])
        #expect(result.frames == [[0x61]])
        #expect(result.decoded == 1)
        #expect(result.escapeErrors == 0)
        #expect(result.overflows == 0)
    }

    @Test("bytes before the first END (line noise) come out as a frame of their own")
    func noiseBeforeFirstEnd() {
        #expect(decodeAll([hex("7a7ac061c0")]).frames == [[0x7A, 0x7A], [0x61]])
    }

    /// Streams with one bad frame between two good ones: the bad one is dropped and counted, the
    /// next END resynchronises.
    static let escapeErrorStreams: [(name: String, line: [UInt8], frames: [[UInt8]])] = [
        ("ESC then a plain byte", hex("c061c0 c062db4163c0 c064c0"), [[0x61], [0x64]]),
        ("ESC then END", hex("c061c0 c062dbc0 64c0"), [[0x61], [0x64]]),
        ("ESC then ESC", hex("c061c0 c062dbdbdc63c0 c064c0"), [[0x61], [0x64]]),
        ("ESC ESC_END is fine, ESC 0x00 is not", hex("c061c0 dbdcdb00c0 c064c0"), [[0x61], [0x64]]),
    ]

    @Test("an ESC followed by anything but ESC_END/ESC_ESC drops the frame", arguments: escapeErrorStreams)
    func escapeErrors(name: String, line: [UInt8], frames: [[UInt8]]) {
        let whole = decodeAll([line])
        #expect(whole.frames == frames, "\(name)")
        #expect(whole.escapeErrors == 1)
        #expect(whole.overflows == 0)
        #expect(whole.decoded == 2)
        let bytewise = decodeAll(line.map { [$0] })
        #expect(bytewise.frames == frames, "\(name), byte by byte")
        #expect(bytewise.escapeErrors == 1)
    }

    @Test("ESC then END: the END still ends the frame, so the next byte starts a new one")
    func escapeThenEndResyncs() {
        #expect(decodeAll([hex("c061dbc062c0")]).frames == [[0x62]])
    }

    @Test("frames up to the maximum size pass, longer ones are dropped and counted once")
    func overflow() {
        let four: [UInt8] = [1, 2, 3, 4]
        let five: [UInt8] = [1, 2, 3, 4, 5]
        let long = [UInt8](repeating: 7, count: 100)
        let line = [0xC0] + four + [0xC0] + five + [0xC0] + long + [0xC0, 0x09, 0xC0]
        let result = decodeAll([line], maximumFrameSize: 4)
        #expect(result.frames == [four, [9]])
        #expect(result.overflows == 2)
        #expect(result.escapeErrors == 0)
        let bytewise = decodeAll(line.map { [$0] }, maximumFrameSize: 4)
        #expect(bytewise.frames == [four, [9]])
        #expect(bytewise.overflows == 2)
    }

    @Test("an escaped byte that does not fit overflows too")
    func overflowOnEscapedByte() {
        let result = decodeAll([hex("c061dbdcc0 c0dbddc0")], maximumFrameSize: 1)
        #expect(result.frames == [[0xDB]])
        #expect(result.overflows == 1)
    }

    @Test("state, reset() and counters")
    func stateAndReset() {
        // #expect cannot capture a ~Copyable value: read each property into a local first.
        var decoder = SLIPDecoder(maximumFrameSize: 8)
        let size = decoder.maximumFrameSize
        #expect(size == 8)
        var frames: [[UInt8]] = []
        hex("c06162").withUnsafeBytes { decoder.decode($0) { frames.append(Array($0)) } }
        var partial = decoder.partialFrameLength
        #expect(partial == 2)
        decoder.reset()
        partial = decoder.partialFrameLength
        #expect(partial == 0)
        hex("63c0 db41").withUnsafeBytes { decoder.decode($0) { frames.append(Array($0)) } }
        #expect(frames == [[0x63]])
        var discarding = decoder.isDiscarding
        let escapeErrors = decoder.escapeErrors
        #expect(discarding)
        #expect(escapeErrors == 1)
        hex("c0").withUnsafeBytes { decoder.decode($0) { frames.append(Array($0)) } }
        discarding = decoder.isDiscarding
        #expect(!discarding)
        decoder.resetCounters()
        let counters = [decoder.framesDecoded, decoder.escapeErrors, decoder.overflows]
        #expect(counters == [0, 0, 0])
        let minimum = SLIPDecoder(maximumFrameSize: 0).maximumFrameSize
        #expect(minimum == 1)
    }

    @Test("random frames survive encode → random chunking → decode", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomRoundTrip(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var frames: [[UInt8]] = []
        var line: [UInt8] = []
        for _ in 0..<50 {
            // Bias towards the special bytes so escapes are common.
            let frame = (0..<Int.random(in: 1...300, using: &rng)).map { _ -> UInt8 in
                switch Int.random(in: 0..<8, using: &rng) {
                case 0: return 0xC0
                case 1: return 0xDB
                case 2: return 0xDC
                default: return UInt8.random(in: 0...255, using: &rng)
                }
            }
            frames.append(frame)
            line += streamEncode(frame, space: { _ in Int.random(in: 0...9, using: &rng) })
        }
        var chunks: [[UInt8]] = []
        var at = 0
        while at < line.count {
            let n = min(line.count - at, Int.random(in: 1...40, using: &rng))
            chunks.append(Array(line[at..<(at + n)]))
            at += n
        }
        let result = decodeAll(chunks, maximumFrameSize: 300)
        #expect(result.frames == frames)
        #expect(result.decoded == 50)
        #expect(result.escapeErrors == 0 && result.overflows == 0)
    }
}
