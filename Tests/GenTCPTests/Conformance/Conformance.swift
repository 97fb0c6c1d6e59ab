import Testing

/// Every suite of this target, run one test at a time: many cases are about timing (a timeout,
/// data that must have arrived after 20 ms), and on a small shared machine parallel tests that
/// checksum megabytes starve each other's processes of the two cooperative threads.
@Suite("GenTCP", .serialized, .timeLimit(.minutes(3)))
struct GenTCPSuite {
    /// The one conformance suite every driver must pass: the acceptance cases of
    /// `gen-tcp-acceptance.md` (cited by number in each test's name) and the rules of
    /// `gen-tcp-semantics.md` they do not list. Every test runs once per ``Backend``.
    ///
    /// Notation as in the acceptance document: C is the client socket under test, owned by the
    /// test process T; P is the peer, the accepted end of a GenTCP listener L on the same backend,
    /// passive and binary unless stated.
    @Suite("Conformance")
    struct Conformance {}

    /// Tests of the posix driver itself: its memory contract, its syscall funnel, and `linger`.
    @Suite("POSIX driver")
    struct POSIXTests {}
}

typealias Conformance = GenTCPSuite.Conformance
typealias POSIXTests = GenTCPSuite.POSIXTests
