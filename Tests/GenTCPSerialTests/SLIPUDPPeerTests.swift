import Foundation
import GenTCP
import GenTCPCore
import GenTCPSerial
import GenTCPSLIP
import Testing

// gen_udp on the slip driver against two real stacks: lwIP 2.1.3 (tools/lwip-peer, its UDP echo
// on port 7 written on the raw API) and the Linux kernel (tools/slip-tun, the UDP echo of
// services.py in the namespace). The line is clean but real-time: our driver on a MemoryLink
// paced at `udpPeerBaud`, relayed to the peer's pty, so the figures are the line's.

/// The line's rate for these tests, in baud (10 bits a byte on the wire).
let udpPeerBaud = 921_600

/// `GENTCP_UDP_PEER_LINE=pty` runs these tests on the bare pty instead (unpaced, as the TCP peer
/// tests run): then the figures are the two programs' and the machine's, not the line's.
let udpPeerUnpaced = ProcessInfo.processInfo.environment["GENTCP_UDP_PEER_LINE"] == "pty"

/// The faults of the paced line (none), or nil for the bare pty.
let udpPeerLineFaults: LineFaults? = udpPeerUnpaced ? nil : LineFaults()

/// The line, for the figures.
let udpPeerLineLabel = udpPeerUnpaced ? "pty (unpaced)" : "\(udpPeerBaud) baud"

/// The echo service's port on both peers.
let udpEchoPort = 7

/// A UDP port neither peer has (both answer ICMP port unreachable).
let udpClosedPort = 4242

/// Datagram number `seq` of an echo run, `size` bytes (at least 4): the number big-endian, then
/// bytes that depend on the number and the position, so a datagram delivered in another's place,
/// or altered anywhere, never compares equal.
func numberedDatagram(_ seq: Int, size: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: size)
    let n = UInt32(truncatingIfNeeded: seq)
    bytes[0] = UInt8(truncatingIfNeeded: n >> 24)
    bytes[1] = UInt8(truncatingIfNeeded: n >> 16)
    bytes[2] = UInt8(truncatingIfNeeded: n >> 8)
    bytes[3] = UInt8(truncatingIfNeeded: n)
    var x = UInt32(truncatingIfNeeded: seq) &* 2_654_435_761 &+ 1
    for i in 4..<max(size, 4) {
        x ^= x << 13
        x ^= x >> 17
        x ^= x << 5
        bytes[i] = UInt8(truncatingIfNeeded: x >> 11)
    }
    return bytes
}

/// The size of datagram `seq` when the largest is `largest`: every size from 4 to `largest`
/// comes up (7919 is prime, so the sizes run through the whole range before repeating), the
/// largest first.
func numberedDatagramSize(_ seq: Int, largest: Int) -> Int {
    let span = largest - 3
    return 4 + (span - 1 + seq * 7919) % span
}

/// What one run of numbered datagrams through an echo found.
struct UDPEchoRun: Sendable {
    var sent = 0
    var received = 0
    /// Datagrams that came back different from what was sent (or from elsewhere, or cut).
    var altered = 0
    /// Datagrams that came back before one sent earlier had (or twice).
    var reordered = 0
    /// Receives that waited the whole stall limit: the window was then written off as lost.
    var stalls = 0
    /// Payload bytes sent (and, without loss, received).
    var bytes = 0
    var time: Duration = .zero
    var smallest = Int.max
    var largest = 0
    /// Line bytes (SLIP framing included) written and read during the run.
    var lineBytesSent = 0
    var lineBytesReceived = 0
    /// Frames our decoder dropped, and datagrams with a bad checksum, during the run.
    var damagedFrames = 0
    /// The first problems seen, for the failure message.
    var notes: [String] = []

    /// Sent and never received.
    var loss: Int { sent - received }

    var seconds: Double { Double(time.components.seconds) + Double(time.components.attoseconds) * 1e-18 }

    /// One line for the test output (and the README); `baud` gives the line's use (10 bits a
    /// byte on the wire; 0 for an unpaced line: no use then).
    func summary(_ label: String, baud: Int) -> String {
        let s = max(seconds, 1e-9)
        let capacity = Double(baud) / 10 * s
        let use = baud <= 0 ? "" : String(format: "line in use %.0f %% out, %.0f %% in; ",
                                            100 * Double(lineBytesSent) / capacity, 100 * Double(lineBytesReceived) / capacity)
        return "\(label): \(sent) datagrams (\(smallest)…\(largest) B) echoed in "
            + String(format: "%.1f s: %.0f datagrams/s, %.0f B/s of payload each way; ", s, Double(received) / s, Double(bytes) / s)
            + use
            + "loss \(loss) (sent \(sent), received \(received)), altered \(altered), reordered \(reordered), stalls \(stalls)"
    }
}

/// Sends `count` numbered datagrams of every size up to the socket's largest to the echo on
/// `peer`, keeping `window` in flight (the next goes when one returns), and checks each that
/// comes back byte for byte, and that they come back in the order sent. A receive that waits
/// `stall` ms writes the window off as lost (more than 10 such stalls end the run).
func udpEchoRun(driver: SLIPDriver, peer: SocketAddress, count: Int, window: Int, stall: Int) async throws -> UDPEchoRun {
    let socket = try await UDPSocket.open(options: [.binary, .active(.passive), .recbuf(256 << 10)], driver: driver)
    defer { socket.close() }
    let largest = socket.maximumDatagramSize
    var run = UDPEchoRun()
    var next = 0
    var inFlight = 0
    var highest = -1
    let lineBefore = driver.statistics
    let start = ContinuousClock.now
    func note(_ text: String) { if run.notes.count < 10 { run.notes.append(text) } }
    while next < count || inFlight > 0 {
        while inFlight < window && next < count {
            let size = numberedDatagramSize(next, largest: largest)
            try await socket.send(numberedDatagram(next, size: size), to: peer)
            run.sent += 1
            run.bytes += size
            run.smallest = min(run.smallest, size)
            run.largest = max(run.largest, size)
            next += 1
            inFlight += 1
        }
        let datagram: Datagram
        do throws(SocketError) {
            datagram = try await socket.recv(timeout: .milliseconds(stall))
        } catch {
            guard error.reason == .timeout else { throw error }
            run.stalls += 1
            note("nothing for \(stall) ms with \(inFlight) in flight (next \(next))")
            inFlight = 0
            if run.stalls > 10 { break }
            continue
        }
        inFlight = max(0, inFlight - 1)
        let bytes = datagram.payload.bytes
        guard bytes.count >= 4, datagram.source == peer, !datagram.truncated else {
            run.altered += 1
            note("a datagram of \(bytes.count) B from \(datagram.source)\(datagram.truncated ? ", truncated" : "")")
            continue
        }
        let seq = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard seq < next, bytes == numberedDatagram(seq, size: numberedDatagramSize(seq, largest: largest)) else {
            run.altered += 1
            note("datagram \(seq) (\(bytes.count) B) is not what was sent")
            continue
        }
        if seq <= highest {
            run.reordered += 1
            note("datagram \(seq) came after \(highest)")
            continue
        }
        highest = seq
        run.received += 1
    }
    run.time = ContinuousClock.now - start
    let lineAfter = driver.statistics
    run.lineBytesSent = lineAfter.bytesSent - lineBefore.bytesSent
    run.lineBytesReceived = lineAfter.bytesReceived - lineBefore.bytesReceived
    run.damagedFrames = (lineAfter.escapeErrors - lineBefore.escapeErrors)
        + (lineAfter.oversizedFrames - lineBefore.oversizedFrames)
        + (lineAfter.stack.badChecksum - lineBefore.stack.badChecksum)
    let stats = try socket.getstat()
    if stats.recvDropped != 0 || stats.recvTruncated != 0 {
        note("our socket dropped \(stats.recvDropped), truncated \(stats.recvTruncated)")
        run.altered += Int(stats.recvTruncated)
    }
    return run
}

/// The checks both peers share once an echo run is over.
func expectCleanEchoRun(_ run: UDPEchoRun, count: Int, largest: Int) {
    #expect(run.sent == count)
    #expect(run.loss == 0, "datagrams lost on a clean line: \(run.notes)")
    #expect(run.altered == 0, "\(run.notes)")
    #expect(run.reordered == 0, "\(run.notes)")
    #expect(run.damagedFrames == 0, "frames damaged on a clean line")
    #expect(run.smallest == 4 && run.largest == largest)
}

/// A socket connected to a closed port on `board` hears the peer's ICMP port unreachable as
/// `econnrefused` once, and then nothing, from a receive, or from the next send when no receive
/// came first; a datagram one byte over the largest is `emsgsize` (the largest itself goes).
func expectRefusedAndTooLong(driver: SLIPDriver, board: IPAddress, mtu: Int) async throws {
    let before = driver.statistics.stack.portUnreachableReceived
    let c = try await UDPSocket.open(options: [.binary, .active(.passive)], driver: driver)
    defer { c.close() }
    #expect(c.maximumDatagramSize == mtu - 28)
    try await c.connect(.address(board), port: udpClosedPort)
    try await c.send([1, 2, 3])
    await #expect(throws: SocketError(.connectionRefused)) { _ = try await c.recv(timeout: 10_000) }
    await #expect(throws: SocketError(.timeout)) { _ = try await c.recv(timeout: 500) }
    #expect(driver.statistics.stack.portUnreachableReceived == before + 1)

    // When no receive comes first, the next send reports it (and does not go), once.
    try await c.send([4, 5, 6])
    let deadline = ContinuousClock.now + .seconds(10)
    while driver.statistics.stack.portUnreachableReceived < before + 2 && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(10))
    }
    #expect(driver.statistics.stack.portUnreachableReceived == before + 2)
    let sentBefore = driver.statistics.stack.datagramsSent
    await #expect(throws: SocketError(.connectionRefused)) { try await c.send([7]) }
    #expect(driver.statistics.stack.datagramsSent == sentBefore)
    try await c.send([8])
    await #expect(throws: SocketError(.connectionRefused)) { _ = try await c.recv(timeout: 10_000) }

    let largest = c.maximumDatagramSize
    let echo = SocketAddress(board, port: udpEchoPort)
    let u = try await UDPSocket.open(options: [.binary, .active(.passive)], driver: driver)
    defer { u.close() }
    await #expect(throws: SocketError(.messageTooLong)) { try await u.send([UInt8](repeating: 0x5A, count: largest + 1), to: echo) }
    try await u.send([UInt8](repeating: 0xC0, count: largest), to: echo)  // every byte escaped on the line
    let back = try await u.recv(timeout: 10_000)
    #expect(back.payload.bytes == [UInt8](repeating: 0xC0, count: largest))
    #expect(back.source == echo)
}

/// What tshark finds wrong in the line's capture at `path`: malformed packets, bad IPv4, UDP or
/// ICMP checksums (checked, as tshark does not by default). The UDP datagram an ICMP error
/// quotes is left out: lwIP and we quote its first 8 bytes (RFC 792), so its checksum cannot
/// verify. Empty when all is well, or when tshark is missing.
func badPacketsInCapture(_ path: String) async -> String {
    await offPool {
        guard tsharkAvailable() == nil else { return "" }
        return shell("tshark -r \(path) -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE "
            + "-Y \"_ws.malformed || ip.checksum.status == 2 || (udp.checksum.status == 2 && !icmp) "
            + "|| icmp.checksum.status == 2\"")
            .output
    }
}

/// The ICMP port unreachable messages from `source` in the line's capture at `path`, each
/// quoting a UDP datagram; nil when tshark is missing.
func portUnreachablesInCapture(_ path: String, from source: IPAddress) async -> Int? {
    await offPool {
        guard tsharkAvailable() == nil else { return nil }
        // The outer header's source only (the quoted datagram has an IP header too).
        let r = shell("tshark -r \(path) -Y \"icmp.type == 3 && icmp.code == 3 && udp\" "
            + "-T fields -E occurrence=f -e ip.src")
        return r.output.split(separator: "\n").filter { $0 == "\(source)" }.count
    }
}

/// Each peer echoes 10,000 numbered datagrams of 4…978 bytes (MTU 1006), 8 in flight, on a
/// clean line paced at 921 600 baud; each peer also refuses a closed port with its own ICMP.
///
/// Measured here (2 cores, shared): both peers took 57.0 s, 175-176 datagrams/s, 86.1-86.2 kB/s
/// of payload each way, the line busy 100 % both ways, nothing lost, altered or reordered. That
/// is the line's limit: 92 160 B/s times the payload's share of what goes on the wire (a mean
/// of 491 payload bytes in about 525 line bytes, with the 28 header bytes, two ENDs and the
/// escapes) is about 86 kB/s. Eight in flight keep the line full without filling any queue.
/// On the bare pty (`GENTCP_UDP_PEER_LINE=pty`) the same runs took 1.1 s against lwIP (about
/// 9 300 datagrams/s, 4.6 MB/s each way) and 1.4 s against Linux (about 7 000 datagrams/s,
/// 3.5 MB/s), nothing lost either.
@Suite("SLIP UDP real peers", .serialized, .timeLimit(.minutes(6)))
struct SLIPUDPPeerTests {
    static let count = 10_000
    /// Datagrams in flight: 8, or `GENTCP_UDP_WINDOW` (64 and 512 also lost nothing on the bare
    /// pty here: our sends wait on the stack's 4-slot send queue, which the line drains).
    static let window = Int(ProcessInfo.processInfo.environment["GENTCP_UDP_WINDOW"] ?? "") ?? 8
    static let mtu = 1006

    @Test("lwIP: 10,000 datagrams echoed at the line's pace, none lost, altered or reordered")
    func lwipEcho() async throws {
        if let reason = LwIPPeer.unavailable {
            print("skipping the lwIP peer: \(reason)")
            return
        }
        try await withLwIPPeer(size: 0, mtu: Self.mtu, faults: udpPeerLineFaults, capture: true) { peer in
            let run = try await udpEchoRun(
                driver: peer.driver, peer: SocketAddress(slipBoard, port: udpEchoPort), count: Self.count,
                window: Self.window, stall: 10_000)
            print(run.summary("slip ⇄ lwIP UDP echo, \(udpPeerLineLabel), MTU \(Self.mtu), window \(Self.window)", baud: udpPeerUnpaced ? 0 : udpPeerBaud))
            expectCleanEchoRun(run, count: Self.count, largest: Self.mtu - 28)
            peer.driver.flushCapture()
            let bad = await badPacketsInCapture(peer.directory + "/line.pcap")
            #expect(bad.isEmpty, "bad packets on the line:\n\(bad)")
        }
    }

    @Test("lwIP: a closed port is econnrefused once (lwIP's ICMP); above the largest is emsgsize")
    func lwipRefused() async throws {
        if let reason = LwIPPeer.unavailable {
            print("skipping the lwIP peer: \(reason)")
            return
        }
        try await withLwIPPeer(size: 0, mtu: Self.mtu, faults: udpPeerLineFaults, capture: true) { peer in
            try await expectRefusedAndTooLong(driver: peer.driver, board: slipBoard, mtu: Self.mtu)
            peer.driver.flushCapture()
            let path = peer.directory + "/line.pcap"
            let bad = await badPacketsInCapture(path)
            #expect(bad.isEmpty, "bad packets on the line:\n\(bad)")
            if let count = await portUnreachablesInCapture(path, from: slipBoard) {
                #expect(count == 3, "lwIP's port unreachables on the line")
            }
        }
    }

    @Test("Linux: 10,000 datagrams echoed at the line's pace, none lost, altered or reordered")
    func linuxEcho() async throws {
        if let reason = await offPool({ LinuxPeer.unavailable() }) {
            print("skipping the Linux peer: \(reason)")
            return
        }
        try await withLinuxUDPPeer { peer in
            let run = try await udpEchoRun(
                driver: peer.driver, peer: SocketAddress(slipBoard, port: udpEchoPort), count: Self.count,
                window: Self.window, stall: 10_000)
            print(run.summary("slip ⇄ Linux UDP echo, \(udpPeerLineLabel), MTU \(Self.mtu), window \(Self.window)", baud: udpPeerUnpaced ? 0 : udpPeerBaud))
            expectCleanEchoRun(run, count: Self.count, largest: Self.mtu - 28)
            peer.driver.flushCapture()
            let bad = await badPacketsInCapture(peer.directory + "/line.pcap")
            #expect(bad.isEmpty, "bad packets on the line:\n\(bad)")
        }
    }

    /// Also the other way: the kernel's datagram to a port we do not have gets our ICMP port
    /// unreachable, which the kernel accepts (its connected socket reports ECONNREFUSED).
    @Test("Linux: a closed port is econnrefused once (the kernel's ICMP), and ours reaches the kernel; above the largest is emsgsize")
    func linuxRefused() async throws {
        if let reason = await offPool({ LinuxPeer.unavailable() }) {
            print("skipping the Linux peer: \(reason)")
            return
        }
        try await withLinuxUDPPeer { peer in
            try await expectRefusedAndTooLong(driver: peer.driver, board: slipBoard, mtu: Self.mtu)

            let sent = peer.driver.statistics.stack.portUnreachableSent
            let probe = await offPool {
                shell("ip netns exec \(peer.namespace) python3 \(peerPackageRoot)/tools/slip-tun/udp_probe.py "
                    + "10.0.0.1 \(udpClosedPort) 2>&1")
            }
            #expect(probe.status == 0, "the kernel's datagram to our closed port: \(probe.output)")
            #expect(peer.driver.statistics.stack.portUnreachableSent == sent + 1)
            peer.driver.flushCapture()
            let path = peer.directory + "/line.pcap"
            let bad = await badPacketsInCapture(path)
            #expect(bad.isEmpty, "bad packets on the line:\n\(bad)")
            if let count = await portUnreachablesInCapture(path, from: slipBoard) {
                #expect(count == 3, "the kernel's port unreachables on the line")
            }
            if let count = await portUnreachablesInCapture(path, from: slipHost) {
                #expect(count == 1, "our port unreachable on the line")
            }
        }
    }

    /// Starts the Linux peer on a clean paced line, runs `body` in a GenTCP process, and stops
    /// the peer (keeping its directory, with the line's capture, when `body` failed).
    func withLinuxUDPPeer(_ body: @escaping @Sendable (LinuxPeer) async throws -> Void) async throws {
        let peer = try await offPool {
            Result { try LinuxPeer(size: 0, mtu: Self.mtu, faults: udpPeerLineFaults, baud: udpPeerBaud) }
        }.get()
        do {
            try await peer.waitUntilReady()
            try await Process.run { try await body(peer) }
        } catch {
            peer.driver.flushCapture()
            await offPool { peer.stop(keepDirectory: true) }
            print("kept for inspection (line.pcap): \(peer.directory)")
            throw error
        }
        await offPool { peer.stop() }
    }
}
