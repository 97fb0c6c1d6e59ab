import GenTCP
import GenTCPCore
import GenTCPPOSIX

/// One comparison: a GenTCP run and a raw run doing the same work.
struct Case: Sendable {
    enum Work: Sendable {
        case bytes(Int)
        case roundTrips(Int)
        /// Datagrams sent one way; the rate counts those received.
        case datagrams(Int)
        /// Full TLS handshakes, one after the other.
        case handshakes(Int)
    }

    /// A short name for `--only`.
    var name: String
    /// What GenTCP does.
    var title: String
    /// What the raw reference does.
    var reference: String
    var work: Work
    /// The least acceptable GenTCP/raw ratio, or nil when the case is only reported.
    var goal: Double?
    var genTCP: @Sendable (POSIXDriver) async throws -> Sample
    var raw: @Sendable () async throws -> Sample
    /// The same work on OTP's gen_tcp (``OTPPeer``), where the case has an OTP form.
    var otp: (@Sendable (OTPPeer) -> Sample)? = nil
    /// The raw reference with a receiver that spins instead of sleeping (the machine's limit),
    /// where the case has one.
    var rawSpin: (@Sendable () -> Sample)? = nil

    /// Work units per second for a sample: bytes/s or round trips/s.
    func rate(_ s: Sample) -> Double {
        switch work {
        case .bytes(let n): return Double(n) / s.seconds
        case .roundTrips(let n): return Double(n) / s.seconds
        case .handshakes(let n): return Double(n) / s.seconds
        case .datagrams: return Double(s.deliveries) / s.seconds
        }
    }

    func formatted(_ rate: Double) -> String {
        switch work {
        case .bytes: return formatRate(bytesPerSecond: rate)
        case .roundTrips: return formatRoundTrips(perSecond: rate)
        case .handshakes: return format(rate, 0) + " hs/s"
        case .datagrams: return formatDatagrams(perSecond: rate)
        }
    }
}

/// The cases of the table, in order.
func standardCases(bytes: Int, roundTrips: Int) -> [Case] {
    let big = 64 * 1024
    let small = SocketOptions.defaultBuffer
    let framedBytes = max(Frame.size, bytes / 16 / Frame.size * Frame.size)
    func bulk(_ name: String, _ title: String, buffer: Int, active: Bool, goal: Double?) -> Case {
        Case(name: name, title: title, reference: "raw read(\(formatSize(buffer)))", work: .bytes(bytes), goal: goal,
             genTCP: { try await Bulk.genTCPReceiver(total: bytes, buffer: buffer, active: active, driver: $0) },
             raw: { Bulk.rawReceiver(total: bytes, readSize: buffer) },
             otp: { $0.bulk(total: bytes, buffer: buffer, mode: active ? "active" : "passive") },
             rawSpin: { Bulk.rawReceiver(total: bytes, readSize: buffer, spinning: true) })
    }
    func pingPong(_ name: String, _ title: String, _ client: PingPong.Client, goal: Double?) -> Case {
        Case(name: name, title: title, reference: "raw write+read", work: .roundTrips(roundTrips), goal: goal,
             genTCP: { try await PingPong.genTCP(client, roundTrips: roundTrips, driver: $0) },
             raw: { PingPong.raw(roundTrips: roundTrips, framed: client == .framed) },
             otp: { peer in
                 switch client {
                 case .passive: peer.pingPong(roundTrips: roundTrips, mode: "passive")
                 case .activeOnce: peer.pingPong(roundTrips: roundTrips, mode: "once")
                 case .framed: peer.pingPong(roundTrips: roundTrips, mode: "framed")
                 case .passiveSpinning: fatalError("gentcp-bench: no OTP form of the spinning ping-pong")
                 }
             },
             rawSpin: { PingPong.raw(roundTrips: roundTrips, spinning: true, framed: client == .framed) })
    }
    return [
        bulk("bulk-passive-64k", "bulk, passive recv(0), buffer 64 KiB", buffer: big, active: false, goal: 0.9),
        bulk("bulk-active-64k", "bulk, {active,true}, buffer 64 KiB", buffer: big, active: true, goal: 0.9),
        bulk("bulk-passive-1460", "bulk, passive recv(0), buffer 1460", buffer: small, active: false, goal: nil),
        bulk("bulk-active-1460", "bulk, {active,true}, buffer 1460", buffer: small, active: true, goal: nil),
        // Frames are small: a sixteenth of the bulk size keeps the run as long as the others'.
        Case(name: "bulk-framed-1460", title: "bulk of 64 B frames, recv(4)+recv(60), buffer 1460",
             reference: "raw read(4)+read(60)", work: .bytes(framedBytes), goal: nil,
             genTCP: { try await Bulk.genTCPReceiver(total: framedBytes, buffer: small, active: false, framed: true, driver: $0) },
             raw: { Bulk.rawReceiver(total: framedBytes, readSize: Frame.size, framed: true) },
             otp: { $0.bulk(total: framedBytes, buffer: small, mode: "framed") },
             rawSpin: { Bulk.rawReceiver(total: framedBytes, readSize: Frame.size, spinning: true, framed: true) }),
        Case(name: "bulk-both-64k", title: "bulk, GenTCP both ends, 64 KiB", reference: "raw both ends",
             work: .bytes(bytes), goal: 0.9,
             genTCP: { try await Bulk.genTCPBothEnds(total: bytes, buffer: big, driver: $0) },
             raw: { Bulk.rawReceiver(total: bytes, readSize: big) },
             otp: { $0.bothEnds(total: bytes, buffer: big) },
             rawSpin: { Bulk.rawReceiver(total: bytes, readSize: big, spinning: true) }),
        pingPong("pingpong-passive", "ping-pong 64 B, passive recv(64)", .passive, goal: 0.8),
        pingPong("pingpong-once", "ping-pong 64 B, {active,once}", .activeOnce, goal: 0.8),
        pingPong("pingpong-framed", "ping-pong 64 B framed, recv(4)+recv(60)", .framed, goal: nil),
    ]
}

/// Experiments run by `--diagnose`: ideas for the library, tried from outside it. The plain
/// passive ping-pong comes first so that the rows compare within one interleaved run.
func experimentCases(roundTrips: Int) -> [Case] {
    let baseline = standardCases(bytes: 1, roundTrips: roundTrips).filter { $0.name == "pingpong-passive" }
    return baseline + [5_000, 20_000, 100_000].map { spin in
        Case(name: "pingpong-spin-\(spin / 1000)us",
             title: "  same, poll recv(64,0) \(spin / 1000) µs first",
             reference: "raw write+read", work: .roundTrips(roundTrips), goal: nil,
             genTCP: { try await PingPong.genTCP(.passiveSpinning(spinNanoseconds: UInt64(spin)), roundTrips: roundTrips, driver: $0) },
             raw: { PingPong.raw(roundTrips: roundTrips) }, otp: nil)
    }
}
