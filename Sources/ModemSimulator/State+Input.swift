import GenTCP
import GenTCPCore
import GenTCPModem

/// The module's input: bytes from the host, command lines, busy periods, final results.
extension SimState {
    mutating func input(_ bytes: [UInt8]) {
        guard poweredOn, !silent, !booting else { return }
        if let trigger = nextTrigger(), uartBytes + bytes.count >= trigger.limit {
            let keep = max(trigger.limit - uartBytes, 0)
            uartBytes += keep
            stats.bytesIn += keep
            feed(bytes[..<keep])
            fire(trigger.kind)
            return
        }
        uartBytes += bytes.count
        stats.bytesIn += bytes.count
        feed(bytes[...])
    }

    mutating func feed(_ bytes: ArraySlice<UInt8>) {
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if booting || silent { return }
            if !isESP, busy != nil {
                deferred.append(contentsOf: bytes[i...])
                if deferred.count > 4096 { deferred.removeFirst(deferred.count - 4096) }
                return
            }
            switch mode {
            case .payload(let link, let count):
                let take = min(count - payload.count, bytes.endIndex - i)
                payload.append(contentsOf: bytes[i..<i + take])
                i += take
                if payload.count == count {
                    mode = .line
                    let data = payload
                    payload = []
                    payloadComplete(link: link, data: data)
                }
            case .upload(let name, let count):
                let take = min(count - payload.count, bytes.endIndex - i)
                payload.append(contentsOf: bytes[i..<i + take])
                i += take
                if payload.count == count {
                    mode = .line
                    let data = payload
                    payload = []
                    uploadComplete(name: name, data: data)
                }
            case .line:
                let b = bytes[i]
                i += 1
                lineByte(b)
            }
        }
    }

    mutating func lineByte(_ b: UInt8) {
        if isESP {
            if b == 0x0A {
                var text = line
                if text.last == 0x0D { text.removeLast() }
                let overflow = lineOverflow
                line = []
                lineOverflow = false
                if busy != nil {
                    stats.busyReplies += 1
                    emit("busy p...\r\n")
                    return
                }
                if echo { emit(text + [0x0D, 0x0A]) }
                if text.isEmpty { return }
                commandLine(text, overflow: overflow)
            } else {
                appendLineByte(b)
            }
        } else {
            if b == 0x0A, line.isEmpty { return }  // the LF of a CR-LF host
            if echo { emit([b]) }
            if b == 0x0D {
                let text = line
                let overflow = lineOverflow
                line = []
                lineOverflow = false
                if text.isEmpty { return }
                commandLine(text, overflow: overflow)
            } else if b == 0x08, !line.isEmpty {
                line.removeLast()  // backspace, as terminals send
            } else {
                appendLineByte(b)
            }
        }
    }

    mutating func appendLineByte(_ b: UInt8) {
        if line.count < 512 { line.append(b) } else { lineOverflow = true }
    }

    mutating func commandLine(_ text: [UInt8], overflow: Bool) {
        stats.commands += 1
        if isESP, configuration.faults.spuriousBusyProbability > 0,
           rng.chance(configuration.faults.spuriousBusyProbability) {
            stats.busyReplies += 1
            emit("busy p...\r\n")
            return
        }
        guard !overflow, text.count <= (isESP ? 256 : 556),
              let command = ATCommandLine(text, caseSensitive: isESP) else {
            error()
            return
        }
        switch dialect {
        case .espAT: espExecute(command)
        case .sim800: simExecute(command)
        case .bg96: bgExecute(command)
        }
    }

    /// Cellular modules queue input that arrives while a send is under way.
    mutating func busyEnded() {
        busy = nil
        guard !isESP, !deferred.isEmpty else { return }
        let pending = deferred
        deferred = []
        feed(pending[...])
    }

    mutating func ok() { emit("\r\nOK\r\n") }
    mutating func error() { emit("\r\nERROR\r\n") }
}
