/// Why a wire-format operation refused its input.
///
/// Parsers throw it for bytes that cannot be what they claim to be; emitters throw it when the
/// destination is too small or a field value cannot be encoded. Every case is a property of the
/// bytes or values handed in, never of the machine: nothing here is worth retrying unchanged.
///
/// | case | thrown by |
/// |---|---|
/// | ``truncated`` | checked view initialisers |
/// | ``badVersion`` | ``IPv4Packet/init(checking:)`` |
/// | ``badHeaderLength`` | ``IPv4Packet/init(checking:)``, ``TCPPacket/init(checking:)`` |
/// | ``lengthMismatch`` | ``IPv4Packet/init(checking:)``, ``UDPPacket/init(checking:)`` |
/// | ``badChecksum`` | the `parsing:` initialisers of the header representations |
/// | ``malformedOption`` | ``TCPOptionReader/next()``, ``TCPHeader/init(parsing:source:destination:verifyingChecksum:)`` |
/// | ``unsupported`` | ``ICMPv4Echo/init(parsing:verifyingChecksum:)`` |
/// | ``bufferTooSmall`` | every `emit`/`write` function, ``SLIP/encode(_:into:)`` |
/// | ``fieldOutOfRange`` | `emit` functions given a value the format cannot carry |
/// | ``optionsTooLong`` | ``TCPHeader/emit(into:payloadLength:source:destination:)`` |
public enum WireError: Error, Hashable, Sendable {
    /// The buffer ends before a structure the format requires: fewer bytes than the fixed header,
    /// or than the header length field announces.
    case truncated
    /// An IPv4 header whose version field is not 4.
    case badVersion
    /// A header length field below the format's minimum: IPv4 IHL < 5, TCP data offset < 5.
    case badHeaderLength
    /// A length field disagrees with the header or the buffer: IPv4 total length below the header
    /// length or beyond the buffer; UDP length below 8 or beyond the buffer.
    case lengthMismatch
    /// The Internet checksum does not verify.
    case badChecksum
    /// A TCP option whose length byte is missing, below 2, runs past the option area, or is wrong
    /// for the option's kind (RFC 9293 §3.1: "must be prepared to handle an illegal option length").
    case malformedOption
    /// A well-formed message of a kind this representation does not describe (an ICMP message that
    /// is not an echo request or reply, or an echo with a nonzero code).
    case unsupported
    /// The destination buffer cannot hold what would be written. Nothing was written.
    case bufferTooSmall
    /// A representation field holds a value its wire field cannot encode (for example an IPv4
    /// payload longer than 65 515 bytes or a fragment offset that is not a multiple of 8).
    case fieldOutOfRange
    /// TCP options that need more than the 40 bytes a header can carry.
    case optionsTooLong
}
