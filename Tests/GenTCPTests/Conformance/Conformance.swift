import Testing

/// The one conformance suite every driver must pass: the acceptance cases of
/// `gen-tcp-acceptance.md` (cited by number in each test's name) and the rules of
/// `gen-tcp-semantics.md` they do not list. Every test runs once per ``Backend``.
///
/// Notation as in the acceptance document: C is the client socket under test, owned by the test
/// process T; P is the peer, the accepted end of a GenTCP listener L on the same backend,
/// passive and binary unless stated.
@Suite("Conformance", .timeLimit(.minutes(1)))
struct Conformance {}
