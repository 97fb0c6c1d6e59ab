// Host smoke test of GenTCPBoard's ModemInterface built in Embedded Swift mode
// (tools/check-embedded-modem.sh builds it for the microcontroller triples and runs it on the
// host): a scripted ESP-AT module that echoes what is sent, the interface's bring-up, a connect,
// 4 KiB echoed byte-exact through passive reads, and a close. Exits 1 on the first mismatch.
import GenTCPBoard
import GenTCPCore
import GenTCPModem

@_silgen_name("exit")
func cExit(_ status: Int32) -> Never

func check(_ condition: Bool, _ what: StaticString) {
    if !condition {
        print("embedded modem smoke: FAILED: \(what)")
        cExit(1)
    }
}

/// Heap allocations so far: the Embedded runtime allocates through `posix_memalign`, which this
/// program defines (forwarding to C's `aligned_alloc`), so every allocation is counted.
nonisolated(unsafe) var allocations = 0

@_silgen_name("aligned_alloc")
func cAlignedAlloc(_ alignment: Int, _ size: Int) -> UnsafeMutableRawPointer?

@_cdecl("posix_memalign")
func countingPosixMemalign(_ pointer: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int) -> Int32 {
    allocations += 1
    let align = max(alignment, 16)
    pointer.pointee = cAlignedAlloc(align, (max(size, 1) + align - 1) / align * align)
    return pointer.pointee == nil ? 12 : 0
}

/// Whether `line` starts with `prefix`.
func starts(_ line: [UInt8], _ prefix: StaticString) -> Bool {
    let n = prefix.utf8CodeUnitCount
    guard line.count >= n else { return false }
    for i in 0..<n where line[i] != prefix.utf8Start[i] { return false }
    return true
}

/// The decimal number at the end of `line`, after its last comma.
func lastNumber(_ line: [UInt8]) -> Int {
    var value = 0
    for b in line {
        if b == 44 { value = 0 } else if b >= 48 && b <= 57 { value = value * 10 + Int(b - 48) }
    }
    return value
}

/// An ESP-AT module in multi-link passive mode whose one link echoes: bytes sent on it are
/// announced (`+IPD,0,<n>`) and read back with `AT+CIPRECVDATA`.
struct ScriptedESP {
    var line: [UInt8] = []
    var output: [UInt8] = []
    var sending = 0
    var held: [UInt8] = []
    var closed = false

    mutating func emit(_ text: StaticString) {
        for i in 0..<text.utf8CodeUnitCount { output.append(text.utf8Start[i]) }
    }

    mutating func emit(number: Int) {
        if number >= 10 { emit(number: number / 10) }
        output.append(UInt8(48 + number % 10))
    }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        for b in bytes {
            if sending > 0 {
                held.append(b)
                sending -= 1
                if sending == 0 {
                    emit("\r\nSEND OK\r\n\r\n+IPD,0,")
                    emit(number: held.count)
                    emit("\r\n")
                }
            } else if b == 10 {
                command(line)
                line.removeAll(keepingCapacity: true)
            } else if b != 13 {
                line.append(b)
            }
        }
    }

    mutating func command(_ c: [UInt8]) {
        if starts(c, "AT+GMR") {
            emit("AT version:3.3.0.0(smoke)\r\n\r\nOK\r\n")
        } else if starts(c, "AT+CWJAP=") {
            emit("WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n")
        } else if starts(c, "AT+CIFSR") {
            emit("+CIFSR:STAIP,\"10.0.0.2\"\r\n\r\nOK\r\n")
        } else if starts(c, "AT+CIPSTART=0,\"TCP\",\"10.0.0.1\",7") {
            emit("0,CONNECT\r\n\r\nOK\r\n")
        } else if starts(c, "AT+CIPSEND=0,") {
            sending = lastNumber(c)
            emit("\r\nOK\r\n\r\n>")
        } else if starts(c, "AT+CIPRECVDATA=0,") {
            let n = min(lastNumber(c), held.count)
            emit("+CIPRECVDATA:")
            emit(number: n)
            emit(",")
            output.append(contentsOf: held[0..<n])
            held.removeFirst(n)
            emit("\r\nOK\r\n")
            if !held.isEmpty {
                emit("+IPD,0,")
                emit(number: held.count)
                emit("\r\n")
            }
        } else if starts(c, "AT+CIPCLOSE=0") {
            closed = true
            emit("0,CLOSED\r\n\r\nOK\r\n")
        } else if starts(c, "AT") {
            emit("\r\nOK\r\n")
        } else {
            emit("\r\nERROR\r\n")
        }
    }
}

func runSmoke() {
    var module = ScriptedESP()
    var interface = ModemInterface(dialect: ESPATDialect(),
                                   configuration: ModemInterfaceConfiguration(wifiSSID: "smoke", wifiPassword: "pw"))
    let line = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
    let app = UnsafeMutableRawBufferPointer.allocate(byteCount: 300, alignment: 8)
    var payload: [UInt8] = []
    for i in 0..<4096 { payload.append(UInt8(truncatingIfNeeded: i &* 7 &+ i >> 8)) }
    var echoed: [UInt8] = []
    echoed.reserveCapacity(payload.count)
    var connection: InterfaceConnection?
    var connected = false
    var sent = 0
    var now = MillisecondInstant(milliseconds: 0)
    interface.start(now: now)
    // Allocations inside the interface's calls once the connection is open (the connect's
    // host string is allowed before that): none expected.
    var transferAllocations = 0
    var before = 0
    var moduleAllocations = 0
    var counting = false
    for _ in 0..<200_000 {
        now = now.advanced(byMilliseconds: 1)
        // The last turn's allocations outside the scripted module, if the connection was open.
        if counting { transferAllocations += allocations - before - moduleAllocations }
        before = allocations
        moduleAllocations = 0
        counting = false
        // The interface's bytes to the module, the module's back in 64-byte UART chunks.
        while true {
            let n = interface.output(into: line, now: now)
            if n == 0 { break }
            let inModule = allocations
            module.feed(UnsafeRawBufferPointer(rebasing: line[0..<n]))
            moduleAllocations += allocations - inModule
        }
        if !module.output.isEmpty {
            let n = min(64, module.output.count)
            let inModule = allocations
            for i in 0..<n { line[i] = module.output[i] }
            module.output.removeFirst(n)
            moduleAllocations += allocations - inModule
            interface.input(UnsafeRawBufferPointer(rebasing: line[0..<n]), now: now)
        }
        _ = interface.poll(now: now)
        while let event = interface.nextEvent() {
            switch event {
            case .up:
                do throws(SocketError) {
                    connection = try interface.connect(to: IPAddress(10, 0, 0, 1), port: 7, settings: InterfaceSettings(), now: now)
                } catch {
                    check(false, "connect threw")
                }
            case .connected: connected = true
            case .failed: check(false, "the connection failed")
            case .down: check(false, "the interface went down")
            default: break
            }
        }
        if module.closed && connection == nil {
            check(interface.isUp && echoed.count == payload.count, "closed before the echo came back")
            check(transferAllocations == 0, "ModemInterface allocated while the connection was open")
            check(allocations > 0, "allocations are not counted")
            print("embedded modem smoke: ok (4096 bytes echoed through the scripted ESP-AT module, no allocation in transfer)")
            line.deallocate()
            app.deallocate()
            return
        }
        guard let c = connection, connected else { continue }
        counting = true
        if sent < payload.count {
            let taken: Result<Int, SocketError> = payload.withUnsafeBytes { raw in
                do throws(SocketError) {
                    return .success(try interface.send(c, UnsafeRawBufferPointer(rebasing: raw[sent...]), now: now))
                } catch {
                    return .failure(error)
                }
            }
            guard case .success(let n) = taken else { return check(false, "send threw") }
            sent += n
        }
        do throws(SocketError) {
            if case .data(let n) = try interface.recv(c, into: app, now: now) {
                for i in 0..<n { echoed.append(app[i]) }
            }
        } catch {
            check(false, "recv threw")
        }
        if echoed.count == payload.count {
            check(echoed == payload, "the echo differs from what was sent")
            check(interface.unsentCount(c) == 0, "bytes left unsent")
            interface.close(c, now: now)
            connection = nil
        }
    }
    check(false, "no echo and close within 200,000 turns")
}

@main
struct EmbeddedModemSmoke {
    static func main() { runSmoke() }
}
