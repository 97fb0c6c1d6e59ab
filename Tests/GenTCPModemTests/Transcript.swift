import Testing
import GenTCPModem

/// A recorded session: what the driver does, what the module sends, and what must come out.
struct Transcript: CustomTestStringConvertible, Sendable {
    var name: String
    var steps: [Step]
    var events: [Ev]
    var written: String
    var errors: [ModemReason] = []

    var testDescription: String { name }
}

extension Step: @unchecked Sendable {}
extension Ev: @unchecked Sendable {}

/// Runs a transcript under every chunking and checks events, output and thrown errors.
func check<D: ModemDialect>(_ transcript: Transcript, _ dialect: D,
                            configuration: ModemConfiguration = ModemConfiguration(),
                            sourceLocation: SourceLocation = #_sourceLocation) {
    for chunking in chunkings(for: transcript.steps) {
        let (session, _) = run(dialect, transcript.steps, chunking: chunking, configuration: configuration)
        #expect(session.events == transcript.events, "chunking \(chunking)", sourceLocation: sourceLocation)
        #expect(session.written == transcript.written, "chunking \(chunking)", sourceLocation: sourceLocation)
        #expect(session.errors.map(\.reason) == transcript.errors, "chunking \(chunking)", sourceLocation: sourceLocation)
        if session.events != transcript.events || session.written != transcript.written { return }
    }
}
