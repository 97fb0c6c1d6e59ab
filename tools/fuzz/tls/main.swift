// Fuzz harness for GenTCPTLSEngine: a client and a server engine joined in memory, driven by the
// input's script, with the client's records to the server tampered with or replaced by the
// input's bytes, and raw bytes thrown at either side at any moment.
//
// Run with `tools/fuzz.sh tls SECONDS` (it builds GenTCPTLSEngine with OpenSSL's module map and
// libraries, from `flags`). The server's certificate is a throw-away self-signed one in this
// folder; the client does not verify it (verification is the engine tests' subject).
//
// Invariants checked (a violation traps, which libFuzzer reports as a crash):
// * neither engine ever takes more ciphertext than its inbound capacity, and the capacity never
//   exceeds the limit it was made with;
// * neither engine ever holds more ciphertext for its transport than its outbound limit plus
//   one record (the record being written when the limit was reached);
// * states only move forward: handshaking, established, then closed/truncated/failed, never
//   back; a failed engine keeps its error;
// * while nothing on the client-to-server path was tampered with, what the server reads is a
//   prefix of what the client wrote.

#if canImport(GenTCPTLSEngine)
import GenTCPCore
import GenTCPTLSEngine
#endif
#if canImport(Glibc)
import Glibc
#endif

func check(_ condition: Bool, _ message: StaticString) {
    if !condition { fatalError("\(message)") }
}

/// The contexts, made once: loading certificates for every input would be most of the time.
let contexts: (client: TLSContext, server: TLSContext, client12: TLSContext) = {
    do {
        let server = try TLSContext(.server(certificateChainFile: "tools/fuzz/tls/server.pem",
                                            privateKeyFile: "tools/fuzz/tls/server.key"))
        let client = try TLSContext(.client(verify: .none))
        let client12 = try TLSContext(.client(verify: .none, maximumVersion: .v1_2))
        return (client, server, client12)
    } catch {
        fatalError("fuzz: cannot load the harness's certificate (run from the repository): \(error)")
    }
}()

/// How far along an engine is: states only move forward.
func stateRank(_ state: TLSState) -> Int {
    switch state {
    case .handshaking: 0
    case .established: 1
    case .closed, .truncated, .failed: 2
    }
}

final class Side {
    let engine: TLSEngine
    var rank = 0
    var failed: TLSError?
    var read: [UInt8] = []

    init(_ engine: TLSEngine) { self.engine = engine }

    func observe() {
        let now = stateRank(engine.state)
        check(now >= rank, "an engine's state went back")
        if case .failed(let e) = engine.state {
            if let failed { check(failed == e, "a failed engine changed its error") }
            failed = e
        }
        rank = now
        check(engine.inboundCapacity >= 0 && engine.inboundCapacity <= engine.limits.inboundCiphertext,
              "inbound capacity out of bounds")
        check(engine.pendingCiphertextCount <= engine.limits.outboundCiphertext + TLSBufferLimits.largestRecord,
              "outbound ciphertext beyond its limit")
    }

    /// Offers bytes; checks the engine never takes more than it said it had room for.
    func offer(_ bytes: ArraySlice<UInt8>) {
        let room = engine.inboundCapacity
        let taken = engine.receiveCiphertext(bytes)
        check(taken >= 0 && taken <= bytes.count && taken <= room, "took more than offered or than its room")
        observe()
    }

    func step() {
        _ = try? engine.handshake()
        while true {
            guard let (bytes, end) = try? engine.readPlaintext(maximumCount: 4096) else { break }
            read += bytes
            if bytes.isEmpty || end != nil { break }
        }
        observe()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let all = Array(UnsafeBufferPointer(start: data, count: size))
    let control = Int(all[0])
    // The first byte says where the script ends; the rest is data to inject or write.
    let split = 1 + min(size - 1, (control >> 3) % 32 + 1)
    let script = all[1..<split]
    let payload = all[split...]
    guard let clientEngine = try? TLSEngine(context: control & 1 == 0 ? contexts.client : contexts.client12, host: "localhost"),
          let serverEngine = try? TLSEngine(context: contexts.server) else { return 0 }
    let client = Side(clientEngine)
    let server = Side(serverEngine)
    var written: [UInt8] = []
    var tampered = false
    var cursor = payload.startIndex
    func take(_ n: Int) -> ArraySlice<UInt8> {
        let end = min(payload.endIndex, cursor + n)
        defer { cursor = end }
        return payload[cursor..<end]
    }

    // Each script byte is an action; the script runs three times so that a short script still
    // gets a handshake's worth of turns.
    for _ in 0..<3 {
        for op in script {
            switch op % 8 {
            case 0:
                client.step()
                server.step()
            case 1:
                // Client to server, whole.
                server.offer(client.engine.takeCiphertext(maximumCount: server.engine.inboundCapacity)[...])
            case 2:
                // Server to client, whole.
                client.offer(server.engine.takeCiphertext(maximumCount: client.engine.inboundCapacity)[...])
            case 3:
                // Client to server, one byte flipped by the payload.
                var bytes = client.engine.takeCiphertext(maximumCount: server.engine.inboundCapacity)
                if !bytes.isEmpty, let mask = take(1).first, mask != 0 {
                    bytes[Int(op >> 3) % bytes.count] ^= mask
                    tampered = true
                }
                server.offer(bytes[...])
            case 4:
                // The client writes some of the payload.
                let chunk = take(Int(op >> 3) * 8 + 1)
                if let n = try? client.engine.writePlaintext(chunk) {
                    check(n >= 0 && n <= chunk.count, "wrote more than offered")
                    written += chunk.prefix(n)
                }
                client.observe()
            case 5:
                // Raw payload bytes thrown at the server.
                let chunk = take(Int(op >> 3) * 16 + 1)
                if !chunk.isEmpty { tampered = true }
                server.offer(chunk)
            case 6:
                // Raw payload bytes thrown at the client.
                client.offer(take(Int(op >> 3) * 16 + 1))
            default:
                // An end: a close_notify from the client, or a transport end on one side.
                switch (op >> 3) % 3 {
                case 0: client.engine.close()
                case 1:
                    server.engine.receiveEndOfStream()
                    tampered = true  // what the client had not yet delivered is cut
                default: client.engine.receiveEndOfStream()
                }
                client.observe()
                server.observe()
            }
        }
    }
    client.step()
    server.step()
    if getenv("TLS_FUZZ_REPORT") != nil {
        // To see what an input does: `TLS_FUZZ_REPORT=1 .build/fuzz/tls/fuzzer FILE`.
        print("client \(client.engine.state), server \(server.engine.state); wrote \(written.count), server read \(server.read.count), tampered \(tampered)")
    }
    if !tampered {
        check(server.read.count <= written.count && Array(written.prefix(server.read.count)) == server.read,
              "the server read bytes the client did not write")
    }
    return 0
}
