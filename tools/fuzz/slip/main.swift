// Fuzz harness for the SLIP codec (tools/fuzz.sh slip SECONDS).
//
// Input layout: byte 0 picks the decoder's maximum frame size, byte 1 seeds the chunking; the
// rest is the line. Checks, trapping on any difference:
//   1. SLIPDecoder, fed the line in pseudo-random chunks, yields exactly the frames and counters
//      of `Model`, a byte-at-a-time transcription of RFC 1055 plus this project's error rules;
//   2. the rest, taken as one frame, encodes identically through the one-shot, callback and
//      resumable encoders (the last with pseudo-random output sizes, 0 included), and decodes
//      back to itself from pseudo-random chunks with no error counted.
import GenTCPWire

/// Like `precondition`, but the message survives -O, so a crash report says what differed.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

/// The reference decoder: as simple as possible, one byte at a time, growing arrays.
struct Model {
    let maximumFrameSize: Int
    var frame: [UInt8] = []
    var escaped = false
    var dropping = false
    var frames: [[UInt8]] = []
    var escapeErrors = 0
    var overflows = 0

    mutating func push(_ byte: UInt8) {
        if byte == 0xC0 {
            if escaped && !dropping { escapeErrors += 1 }
            else if !dropping && !frame.isEmpty { frames.append(frame) }
            frame = []
            escaped = false
            dropping = false
            return
        }
        if dropping { return }
        var value = byte
        if escaped {
            escaped = false
            if byte == 0xDC { value = 0xC0 } else if byte == 0xDD { value = 0xDB } else {
                escapeErrors += 1
                dropping = true
                return
            }
        } else if byte == 0xDB {
            escaped = true
            return
        }
        if frame.count == maximumFrameSize {
            overflows += 1
            dropping = true
            return
        }
        frame.append(value)
    }
}

/// xorshift32: chunk and space sizes from one input byte.
struct Sizes {
    var state: UInt32
    init(_ seed: UInt8) { state = UInt32(seed) &* 2_654_435_761 | 1 }
    mutating func next(_ bound: Int) -> Int {
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        return Int(state % UInt32(bound))
    }
}

func decodeInChunks(_ line: UnsafeRawBufferPointer, maximumFrameSize: Int, sizes: inout Sizes)
    -> (frames: [[UInt8]], decoded: UInt64, escapeErrors: UInt64, overflows: UInt64)
{
    var decoder = SLIPDecoder(maximumFrameSize: maximumFrameSize)
    var frames: [[UInt8]] = []
    var at = 0
    while at < line.count {
        let n = min(line.count - at, 1 + sizes.next(17))
        decoder.decode(UnsafeRawBufferPointer(rebasing: line[at..<(at + n)])) { frame in
            require(frame.count >= 1 && frame.count <= maximumFrameSize, "frame size out of bounds")
            frames.append(Array(frame))
        }
        at += n
    }
    return (frames, decoder.framesDecoded, decoder.escapeErrors, decoder.overflows)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let maximumFrameSize = input[0] == 0xFF ? 1006 : Int(input[0] % 64) + 1
    var sizes = Sizes(input[1])
    let line = UnsafeRawBufferPointer(rebasing: input[2...])

    // 1. Decoder against the model.
    var model = Model(maximumFrameSize: maximumFrameSize)
    for byte in line { model.push(byte) }
    let decoded = decodeInChunks(line, maximumFrameSize: maximumFrameSize, sizes: &sizes)
    require(decoded.frames == model.frames, "frames differ from the model")
    require(decoded.decoded == UInt64(model.frames.count), "framesDecoded differs from the model")
    require(decoded.escapeErrors == UInt64(model.escapeErrors), "escapeErrors differs from the model")
    require(decoded.overflows == UInt64(model.overflows), "overflows differs from the model")

    // 2. Round trip of `line` as a frame through all three encoders.
    let frame = line
    let expectedLength = SLIP.encodedLength(of: frame)
    require(expectedLength <= SLIP.maximumEncodedLength(forFrameLength: frame.count), "encoded length above the maximum")
    var oneShot = [UInt8](repeating: 0, count: expectedLength)
    let written = oneShot.withUnsafeMutableBytes { out -> Int in
        do throws(WireError) { return try SLIP.encode(frame, into: out) } catch { fatalError("encode threw \(error)") }
    }
    require(written == expectedLength, "one-shot length")
    if expectedLength > 0 {
        var short = [UInt8](repeating: 0, count: expectedLength - 1)
        let refused = short.withUnsafeMutableBytes { out -> Bool in
            do throws(WireError) { _ = try SLIP.encode(frame, into: out); return false } catch { return error == .bufferTooSmall }
        }
        require(refused, "a one-byte-short buffer must be refused")
    }
    var viaCallback: [UInt8] = []
    SLIP.encode(frame) { viaCallback += $0 }
    require(viaCallback == oneShot, "callback encoding differs")
    var resumable: [UInt8] = []
    var encoder = SLIPEncoder()
    var space = [UInt8](repeating: 0, count: 8)
    var calls = 0
    while !encoder.isComplete {
        let offer = sizes.next(9)
        let n = space.withUnsafeMutableBytes { encoder.encode(frame, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<offer])) }
        require(n <= offer, "resumable encoder wrote past the space offered")
        resumable += space[0..<n]
        calls += 1
        require(calls <= 20 * (expectedLength + 2), "resumable encoder makes no progress")
    }
    require(resumable == oneShot, "resumable encoding differs")

    let back = oneShot.withUnsafeBytes { decodeInChunks($0, maximumFrameSize: max(1, frame.count), sizes: &sizes) }
    require(back.escapeErrors == 0 && back.overflows == 0, "round trip counted an error")
    require(back.frames == (frame.isEmpty ? [] : [Array(frame)]), "round trip changed the frame")
    return 0
}
