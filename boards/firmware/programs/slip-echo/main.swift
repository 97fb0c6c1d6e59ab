// SLIP echo firmware (interim): GenTCPStack driven directly, echo on TCP 7, ICMP echo by the
// stack. Board 10.13.0.2, host 10.13.0.1, MTU 1006, 1460-byte buffers.
import CBoard
import GenTCPCore
import GenTCPStack
import GenTCPWire

func serve() -> Never {
    var board = QEMUBoard()
    let bufferSize = 1460
    let mtu = 1006
    var stack = Stack(configuration: StackConfiguration(
        localAddress: IPv4Address(10, 13, 0, 2), peerAddress: IPv4Address(10, 13, 0, 1), mtu: mtu,
        maximumConnections: 2, maximumListeners: 1, controlQueueCapacity: 2, eventQueueCapacity: 8,
        seed: board.entropy(), dedicatedLink: true, maximumHalfOpenConnections: 1,
        maximumDatagramSockets: 0, datagramSendQueueCapacity: 1))
    let options = ConnectionOptions(
        sendBufferSize: bufferSize, receiveBufferSize: bufferSize, ackDelay: 10, minimumRTO: 350, maximumRTO: 30_000)
    var decoder = SLIPDecoder(maximumFrameSize: mtu)
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 128, alignment: 4)
    let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: mtu, alignment: 4)
    let echo = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 4)
    var pendingStart = 0
    var pendingEnd = 0
    var connection: ConnectionHandle?
    var peerDone = false

    func write(_ bytes: UnsafeRawBufferPointer) {
        var at = 0
        while at < bytes.count { at += board.writeLine(UnsafeRawBufferPointer(rebasing: bytes[at...])) }
    }

    guard let listener = try? stack.listen(port: 7, backlog: 1, options: options) else {
        board.log("slip-echo: listen failed")
        board_exit(1)
    }
    QEMUBoard.report("boot")
    board.log("slip-echo: ready")

    while true {
        var moved = false
        let now = board.now()
        let n = board.readLine(into: chunk)
        if n > 0 {
            moved = true
            decoder.decode(UnsafeRawBufferPointer(rebasing: chunk[0..<n])) { stack.receive($0, now: now) }
        }
        _ = stack.poll(now: now)
        while let event = stack.nextEvent() {
            if case .acceptable = event, connection == nil {
                connection = try? stack.accept(listener)
                peerDone = false
                pendingStart = 0
                pendingEnd = 0
                if connection != nil { board.log("slip-echo: accepted") }
            }
        }
        if let c = connection {
            if pendingStart < pendingEnd {
                let sent = (try? stack.send(c, UnsafeRawBufferPointer(rebasing: echo[pendingStart..<pendingEnd]))) ?? -1
                if sent < 0 {
                    pendingStart = pendingEnd
                } else if sent > 0 {
                    pendingStart += sent
                    moved = true
                }
            }
            if pendingStart == pendingEnd && !peerDone {
                let result: ReceiveResult = (try? stack.recv(c, into: echo)) ?? .endOfStream
                switch result {
                case .data(let count):
                    pendingStart = 0
                    pendingEnd = count
                    moved = true
                case .endOfStream:
                    peerDone = true
                    moved = true
                case .wouldBlock:
                    break
                }
            }
            if peerDone && pendingStart == pendingEnd {
                stack.close(c)
                connection = nil
                QEMUBoard.report("closed")
            }
        }
        while let length = stack.transmit(into: frame, now: now) {
            moved = true
            SLIP.encode(UnsafeRawBufferPointer(rebasing: frame[0..<length])) { (piece: UnsafeRawBufferPointer) in write(piece) }
        }
        if !moved { board.idle(until: stack.nextDeadline) }
    }
}

serve()
