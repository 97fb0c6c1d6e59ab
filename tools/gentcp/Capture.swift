import ArgumentParser
import GenTCP
import GenTCPPOSIX
import GenTCPSerial
import GenTCPWire
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `gentcp capture`: a recording tap between a program and a serial device.
///
/// It opens the device, makes a new pty for the program (its path is printed first) and copies
/// bytes both ways, recording them: SLIP frames as a pcap file (LINKTYPE_RAW, both directions),
/// or an AT session as a timestamped transcript (`+0.012345 host> AT\r\n`, one line per chunk,
/// non-printable bytes as `\xNN`).
struct Capture: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record a serial session: pcap for SLIP, a timestamped transcript for AT.",
        discussion: """
            Point your program (gentcp connect, pppd, a terminal) at the pty path printed on the \
            first line instead of the device; everything it exchanges with the device is copied \
            through and recorded until stdin closes or --seconds pass. The device is opened raw, \
            8N1, at --baud (or the board's). -v also prints every chunk on stderr in hex and \
            text, >> from your program to the device and << back.

            Example: gentcp capture --serial /dev/ttyUSB0 --link slip --output line.pcap
            """)

    @ArgumentParser.Option(help: "The device (serial port or pty) to record.")
    var serial: String

    @ArgumentParser.Option(help: "What the line carries: slip or at (default: the board's link).")
    var link: String?

    @ArgumentParser.Option(help: "A board profile: sets --link and --baud.")
    var board: String?

    @ArgumentParser.Option(help: "Directory of board profiles.")
    var boards: String = "boards"

    @ArgumentParser.Option(help: "Line speed (default: the board's, else 115200).")
    var baud: Int?

    @ArgumentParser.Option(help: "The file to write: a pcap for slip, a text transcript for at.")
    var output: String

    @ArgumentParser.Option(help: "Stop after this many seconds (default: when stdin closes).")
    var seconds: Double?

    @Flag(name: .shortAndLong, help: "Also trace every chunk on stderr in hex and text (>> to the device, << from it).")
    var verbose = false

    mutating func run() async throws {
        func usage(_ note: String) -> ExitCode {
            printError(failureLine(atom: "badarg", summary: "bad argument", notes: [note]))
            return ExitCode(Status.usage)
        }
        var profile: BoardProfile?
        if let board {
            do throws(BoardProfileError) { profile = try BoardProfile.find(board, in: boards) } catch { throw usage("\(error)") }
        }
        let kind = link ?? profile?.link.rawValue ?? ""
        guard kind == "slip" || kind == "at" else { throw usage("--link must be slip or at, got \"\(kind)\"") }
        let speed = baud ?? profile?.serial.baudRate ?? 115_200

        // Symbolic links resolved, and anything that is not a serial device refused (enotty) or
        // missing (enoent) with gentcp's own line, before the device is opened.
        let classified: SerialDevice
        do throws(SerialLinkError) {
            classified = try SerialDevice(path: serial)
        } catch {
            printError(failureLine(error))
            throw ExitCode(Status.failed)
        }
        let device = open(classified.resolvedPath, O_RDWR | O_NOCTTY)
        guard device >= 0 else {
            let code = errno
            printError(failureLine(SerialLinkError(SocketError.Reason(errno: code), path: serial, operation: "open(2)",
                                                   message: String(cString: strerror(code)))))
            throw ExitCode(Status.failed)
        }
        var t = termios()
        if tcgetattr(device, &t) == 0 {
            cfmakeraw(&t)
            _ = cfsetspeed(&t, Capture.speedConstant(speed))
            _ = tcsetattr(device, TCSANOW, &t)
        }
        var master: Int32 = -1, slave: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        var raw = termios()
        cfmakeraw(&raw)
        guard openpty(&master, &slave, &name, &raw, nil) == 0 else {
            printError(failureLine(atom: "eio", summary: "input/output error", notes: ["openpty failed"]))
            throw ExitCode(Status.failed)
        }
        guard let recorder = Recorder(path: output, slip: kind == "slip") else {
            printError(fileFailureLine(errno, what: "creating \(output)"))
            throw ExitCode(Status.failed)
        }
        let path = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        print(path)
        printError("gentcp: recording \(serial) (\(kind), \(speed) baud) to \(output); your program uses \(path)")
        fflush(nil)

        let trace = verbose ? Trace.start("\(serial) (\(kind), \(speed) baud)", origin: RealRuntime.shared.now) : nil
        // One copying thread per direction: program (pty master) -> device, device -> program.
        Capture.startCopy(from: master, to: device, direction: .host, recorder: recorder, trace: trace)
        Capture.startCopy(from: device, to: master, direction: .device, recorder: recorder, trace: trace)
        if let seconds {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        } else {
            await BlockingThread().run { Simulate.waitForStdinToClose() }
        }
        recorder.close()
        printError("gentcp: capture: \(recorder.summary)")
    }

    static func speedConstant(_ baud: Int) -> speed_t {
        switch baud {
        case 9600: return speed_t(B9600)
        case 19200: return speed_t(B19200)
        case 38400: return speed_t(B38400)
        case 57600: return speed_t(B57600)
        case 230_400: return speed_t(B230400)
        case 460_800: return speed_t(B460800)
        case 921_600: return speed_t(B921600)
        default: return speed_t(B115200)
        }
    }

    static func startCopy(from source: Int32, to destination: Int32, direction: Recorder.Direction, recorder: Recorder,
                          trace: SerialTraceFormatter?) {
        let job = CopyJob(source: source, destination: destination, direction: direction, recorder: recorder, trace: trace)
        var thread = pthread_t()
        _ = pthread_create(&thread, nil, { arg in
            let job = Unmanaged<CopyJob>.fromOpaque(arg!).takeRetainedValue()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(job.source, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return nil }
                job.recorder.record(buffer[0..<n], job.direction)
                if let trace = job.trace {
                    let event = SerialTraceEvent(time: RealRuntime.shared.now, direction: job.direction == .host ? .written : .read,
                                                 what: .bytes(Array(buffer[0..<n])))
                    Console.shared.lines(trace.lines(for: event))
                }
                _ = writeBlocking(job.destination, Array(buffer[0..<n]))
            }
        }, Unmanaged.passRetained(job).toOpaque())
        pthread_detach(thread)
    }

    final class CopyJob: @unchecked Sendable {
        let source: Int32, destination: Int32
        let direction: Recorder.Direction
        let recorder: Recorder
        /// Formats the `--verbose` trace; nil without it.
        let trace: SerialTraceFormatter?
        init(source: Int32, destination: Int32, direction: Recorder.Direction, recorder: Recorder,
             trace: SerialTraceFormatter?) {
            self.source = source
            self.destination = destination
            self.direction = direction
            self.recorder = recorder
            self.trace = trace
        }
    }
}

/// Writes what crosses the line: SLIP frames as pcap records, or AT chunks as transcript lines.
final class Recorder: @unchecked Sendable {
    enum Direction { case host, device }

    private let file: UnsafeMutablePointer<FILE>
    private let slip: Bool
    private let start = Recorder.microsecondsNow()
    // Guarded by `lock`: the two copying threads record concurrently.
    private let lock = Mutex(())
    private var hostDecoder = SLIPDecoderBox()
    private var deviceDecoder = SLIPDecoderBox()
    private var records = 0
    private var bytes = 0
    private var closed = false

    init?(path: String, slip: Bool) {
        guard let f = fopen(path, "wb") else { return nil }
        file = f
        self.slip = slip
        if slip {
            var header = [UInt8](repeating: 0, count: Pcap.fileHeaderLength)
            _ = header.withUnsafeMutableBytes { try? Pcap.writeFileHeader(into: $0) }
            _ = fwrite(header, 1, header.count, file)
        }
    }

    static func microsecondsNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec / 1000)
    }

    func record(_ chunk: ArraySlice<UInt8>, _ direction: Direction) {
        let now = Recorder.microsecondsNow()
        lock.withLock { _ in
            guard !closed else { return }
            bytes += chunk.count
            if slip {
                var frames: [[UInt8]] = []
                Array(chunk).withUnsafeBytes { raw in
                    if direction == .host { hostDecoder.decode(raw) { frames.append($0) } }
                    else { deviceDecoder.decode(raw) { frames.append($0) } }
                }
                for frame in frames {
                    var out = [UInt8](repeating: 0, count: Pcap.recordHeaderLength + frame.count)
                    let n = out.withUnsafeMutableBytes { o in
                        frame.withUnsafeBytes { p in (try? Pcap.writeRecord(into: o, packet: p, timestamp: now)) ?? 0 }
                    }
                    _ = fwrite(out, 1, n, file)
                    records += 1
                }
            } else {
                let seconds = Double(now - start) / 1e6
                var line = "+\(Recorder.format(seconds)) \(direction == .host ? "host>" : "device<") "
                for b in chunk {
                    switch b {
                    case 0x0D: line += "\\r"
                    case 0x0A: line += "\\n"
                    case 0x5C: line += "\\\\"
                    case 0x20...0x7E: line.unicodeScalars.append(Unicode.Scalar(b))
                    default:
                        let hex = Array("0123456789abcdef")
                        line += "\\x\(hex[Int(b >> 4)])\(hex[Int(b & 0xF)])"
                    }
                }
                line += "\n"
                _ = fwrite(line, 1, line.utf8.count, file)
                records += 1
            }
            fflush(file)
        }
    }

    static func format(_ v: Double) -> String {
        let micros = Int((v * 1e6).rounded())
        let frac = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - frac.count) + frac
    }

    var summary: String {
        lock.withLock { _ in "\(records) \(slip ? "packets" : "chunks"), \(bytes) bytes" }
    }

    func close() {
        lock.withLock { _ in
            guard !closed else { return }
            closed = true
            fclose(file)
        }
    }
}

/// A SLIP decoder in a class, so the recorder can hold two (the decoder is ~Copyable).
final class SLIPDecoderBox {
    private var decoder = SLIPDecoder(maximumFrameSize: 65535)
    func decode(_ bytes: UnsafeRawBufferPointer, _ frame: ([UInt8]) -> Void) {
        decoder.decode(bytes) { frame(Array($0)) }
    }
}
