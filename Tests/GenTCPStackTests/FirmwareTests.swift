import GenTCPCore
@testable import GenTCPStack
import GenTCPWire
import Testing

/// A stack whose every connection slot holds buffers of `sizes` from init on.
private func preallocatedStack(
    local: IPv4Address, peer: IPv4Address, seed: UInt64, sizes: ConnectionOptions, slots: Int = 2
) -> Stack {
    Stack(configuration: StackConfiguration(
        localAddress: local, peerAddress: peer, maximumConnections: slots, seed: seed, preallocate: sizes))
}

/// Moves `data` from a new connection of `t.a` to a listener of `t.b` (and back, echoed), then
/// closes both ends and waits until both slots are free. Returns what each side received.
private func echoCycle(
    _ t: inout Transfer, listener: ListenerHandle, options: ConnectionOptions, data: [UInt8]
) throws -> (atB: [UInt8], atA: [UInt8]) {
    let client = try t.a.connect(to: boardAddress, port: 7, options: options, now: MillisecondInstant(milliseconds: t.now))
    var server: ConnectionHandle?
    var sent = 0, echoedBack = 0
    var atB: [UInt8] = [], atA: [UInt8] = []
    var scratch = [UInt8](repeating: 0, count: 2048)
    var shut = false, serverShut = false, endA = false, endB = false
    var steps = 0
    while !(endA && endB), steps < 200_000 {
        steps += 1
        t.step()
        if server == nil { server = try t.b.accept(listener) }
        if sent < data.count {
            sent += data[sent...].withUnsafeBytes { (try? t.a.send(client, $0)) ?? 0 }
        } else if !shut {
            try t.a.shutdown(client)
            shut = true
        }
        if let server {
            while true {
                let r = try scratch.withUnsafeMutableBytes { try t.b.recv(server, into: $0) }
                guard case .data(let n) = r else {
                    if r == .endOfStream { endB = true }
                    break
                }
                atB += scratch[0..<n]
            }
            if echoedBack < atB.count {
                echoedBack += atB[echoedBack...].withUnsafeBytes { (try? t.b.send(server, $0)) ?? 0 }
            } else if endB, !serverShut {
                try t.b.shutdown(server)
                serverShut = true
            }
        }
        while true {
            let r = try scratch.withUnsafeMutableBytes { try t.a.recv(client, into: $0) }
            guard case .data(let n) = r else {
                if r == .endOfStream { endA = true }
                break
            }
            atA += scratch[0..<n]
        }
        t.step()
        t.advance()
    }
    t.a.close(client)
    if let server { t.b.close(server) }
    for _ in 0..<10_000 where t.a.connectionsInUse + t.b.connectionsInUse > 0 {
        t.step()
        t.advance()
    }
    return (atB, atA)
}

@Suite("Firmware: static storage, serial-line tuning, RFC 6528 ISNs")
struct FirmwareTests {
    @Test("a preallocated stack reuses its slots' buffers: byte-exact over several open/close cycles")
    func preallocatedReuse() throws {
        let sizes = ConnectionOptions(sendBufferSize: 4096, receiveBufferSize: 4096, outOfOrderRuns: 4)
        var t = Transfer(loss: 0.001, seed: 11)
        t.a = preallocatedStack(local: hostAddress, peer: boardAddress, seed: 11, sizes: sizes)
        t.b = preallocatedStack(local: boardAddress, peer: hostAddress, seed: 12, sizes: sizes)
        let listener = try t.b.listen(port: 7, backlog: 1, options: sizes)
        // Full-size and smaller connections alternate on the same slots.
        let small = ConnectionOptions(sendBufferSize: 1460, receiveBufferSize: 2048, outOfOrderRuns: 2)
        for cycle in 0..<5 {
            let options = cycle % 2 == 0 ? sizes : small
            let data = pattern(20_000 + 3_001 * cycle, seed: UInt64(100 + cycle))
            let (atB, atA) = try echoCycle(&t, listener: listener, options: options, data: data)
            #expect(atB == data, "cycle \(cycle): the listener's side")
            #expect(atA == data, "cycle \(cycle): the echo")
            #expect(t.a.connectionsInUse == 0 && t.b.connectionsInUse == 0, "cycle \(cycle): slots freed")
            // Freed slots keep their storage at the preallocated sizes.
            for connection in t.a.connections + t.b.connections {
                #expect(connection.sendBuffer.storageSize == 4096)
                #expect(connection.receiveBuffer.storageSize == 4096)
                #expect(connection.assembler.storageSize == 4)
                #expect(connection.scoreboard.storageSize == Connection.scoreboardCapacity(sizes))
            }
        }
    }

    @Test("a connection larger than the preallocated buffers is refused with invalidArgument")
    func preallocatedOversize() throws {
        let sizes = ConnectionOptions(sendBufferSize: 2048, receiveBufferSize: 2048, outOfOrderRuns: 2)
        var stack = preallocatedStack(local: hostAddress, peer: boardAddress, seed: 1, sizes: sizes)
        for options in [
            ConnectionOptions(sendBufferSize: 2049, receiveBufferSize: 2048, outOfOrderRuns: 2),
            ConnectionOptions(sendBufferSize: 2048, receiveBufferSize: 4096, outOfOrderRuns: 2),
            ConnectionOptions(sendBufferSize: 2048, receiveBufferSize: 2048, outOfOrderRuns: 3),
        ] {
            #expect(throws: TCPError.invalidArgument) {
                _ = try stack.connect(to: boardAddress, port: 7, options: options, now: 0)
            }
            #expect(throws: TCPError.invalidArgument) { _ = try stack.listen(port: 8, options: options) }
        }
        #expect(stack.connectionsInUse == 0)
        let fits = ConnectionOptions(sendBufferSize: 1024, receiveBufferSize: 2048, outOfOrderRuns: 0)
        _ = try stack.connect(to: boardAddress, port: 7, options: fits, now: 0)
        _ = try stack.listen(port: 8, options: sizes)
        #expect(stack.connectionsInUse == 1)
    }

    @Test("a freed slot gives its buffers back, scoreboard included; a fresh slot holds none")
    func freedSlotHoldsNothing() throws {
        var t = Transfer(loss: 0, seed: 5)
        for connection in t.a.connections {
            #expect(connection.scoreboard.storageSize == 0)
            #expect(connection.sendBuffer.storageSize == 0)
        }
        let options = ConnectionOptions(sendBufferSize: 4096, receiveBufferSize: 4096)
        let listener = try t.b.listen(port: 7, backlog: 1, options: options)
        let data = pattern(10_000, seed: 9)
        let (atB, atA) = try echoCycle(&t, listener: listener, options: options, data: data)
        #expect(atB == data && atA == data)
        #expect(t.a.connectionsInUse == 0 && t.b.connectionsInUse == 0)
        for connection in t.a.connections + t.b.connections {
            #expect(connection.scoreboard.storageSize == 0)
            #expect(connection.sendBuffer.storageSize == 0)
            #expect(connection.receiveBuffer.storageSize == 0)
            #expect(connection.assembler.storageSize == 0)
        }
    }

    @Test("serial-line options: an RTO floor of four frame times, buffers of four segments")
    func serialLine() {
        let line = ConnectionOptions.serialLine(baud: 115_200, mtu: 1006)
        // (1006 + 2) × 10 bits × 1000 / 115200 = 87 ms a frame.
        #expect(line.minimumRTO == 348)
        #expect(line.initialRTO == 1000)
        #expect(line.maximumRTO == 30_000)
        #expect(line.sendBufferSize == 4 * 966)
        #expect(line.receiveBufferSize == 4 * 966)
        #expect(line.ackDelay == 10)
        #expect(ConnectionOptions.serialLineMinimumRTO(baud: 921_600, mtu: 1006) == 40)
        #expect(ConnectionOptions.serialLineBufferSize(mtu: 296) == 1024)

        // A slow line raises the initial RTO with the floor.
        let slow = ConnectionOptions.serialLine(baud: 9600, mtu: 1006)
        #expect(slow.minimumRTO == 4200)
        #expect(slow.initialRTO == 4200)
        #expect(slow.maximumRTO == 30_000)

        // Tuning never lowers: the slip driver's 16 KiB buffers stay, a 20 ms floor rises.
        let host = ConnectionOptions(
            sendBufferSize: 16384, receiveBufferSize: 16384, ackDelay: 10, minimumRTO: 20, maximumRTO: 30_000)
            .tunedForSerialLine(baud: 115_200, mtu: 1006)
        #expect(host.sendBufferSize == 16384 && host.receiveBufferSize == 16384)
        #expect(host.minimumRTO == 348)
        let small = ConnectionOptions(sendBufferSize: 1460, receiveBufferSize: 1460, minimumRTO: 500)
            .tunedForSerialLine(baud: 115_200, mtu: 1006)
        #expect(small.sendBufferSize == 3864 && small.receiveBufferSize == 3864)
        #expect(small.minimumRTO == 500)
        // A very slow line: the ceiling rises to the floor.
        let crawl = ConnectionOptions(maximumRTO: 1000).tunedForSerialLine(baud: 300, mtu: 1006)
        #expect(crawl.minimumRTO == crawl.maximumRTO && crawl.minimumRTO == 134_400)
    }

    /// The ISN of a SYN to `boardAddress`:7 from local port 40000, opened at `now`.
    private func isn(seed: UInt64, now: Int64) throws -> UInt32 {
        var stack = Stack(configuration: StackConfiguration(localAddress: hostAddress, peerAddress: boardAddress, seed: seed))
        _ = try stack.connect(to: boardAddress, port: 7, localPort: 40000, now: MillisecondInstant(milliseconds: now))
        var buffer = [UInt8](repeating: 0, count: 1006)
        let n = try #require(buffer.withUnsafeMutableBytes { stack.transmit(into: $0, now: MillisecondInstant(milliseconds: now)) })
        let syn = try #require(parseSegment(Array(buffer[0..<n])))
        #expect(syn.flags == .syn)
        return syn.seq
    }

    @Test("ISNs (RFC 6528): a secret per seed, and a 4 µs clock for the same 4-tuple")
    func initialSequenceNumbers() throws {
        let first = try isn(seed: 1, now: 1000)
        #expect(try isn(seed: 1, now: 1000) == first)
        #expect(try isn(seed: 2, now: 1000) != first)
        #expect(try isn(seed: 3, now: 1000) != first)
        // Later, same secret and tuple: ahead by 250 ticks a millisecond.
        let later = try isn(seed: 1, now: 5000)
        #expect(later &- first == 4000 * 250)
        #expect(SequenceNumber(rawValue: later) > SequenceNumber(rawValue: first))

        // Other tuples get unrelated ISNs under the same secret.
        let key = InitialSequenceNumbers(seed: 1)
        let a = key.next(local: hostAddress, localPort: 40000, remote: boardAddress, remotePort: 7, now: 0)
        let b = key.next(local: hostAddress, localPort: 40001, remote: boardAddress, remotePort: 7, now: 0)
        #expect(a != b)

        // Re-keying changes the ISNs.
        var stack = Stack(configuration: StackConfiguration(localAddress: hostAddress, peerAddress: boardAddress, seed: 1))
        let before = stack.initialSequenceNumber(localPort: 40000, remote: boardAddress, remotePort: 7, now: 0)
        stack.reseed(99)
        let after = stack.initialSequenceNumber(localPort: 40000, remote: boardAddress, remotePort: 7, now: 0)
        #expect(before != after)
        #expect(after == InitialSequenceNumbers(seed: 99)
            .next(local: hostAddress, localPort: 40000, remote: boardAddress, remotePort: 7, now: 0))
    }

    @Test("SipHash-2-4 matches the reference vectors (key 00…0f)")
    func sipHash() {
        let k0: UInt64 = 0x0706_0504_0302_0100
        let k1: UInt64 = 0x0F0E_0D0C_0B0A_0908
        func hash(_ count: Int) -> UInt64 {
            var h = SipHash24(k0: k0, k1: k1)
            for i in 0..<count { h.combine(UInt8(i)) }
            return h.finalize()
        }
        #expect(hash(0) == 0x726F_DB47_DD0E_0E31)
        // The paper's worked example: message 00…0e.
        #expect(hash(15) == 0xA129_CA61_49BE_45E5)
    }
}
