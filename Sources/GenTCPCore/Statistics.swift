/// `inet:getstat/1` counters for one socket.
///
/// `recv_*` count deliveries to the user (one per `recv` result or `tcp` message), not segments;
/// `send_*` count `send` calls that returned ok, empty ones included. Octet counters are 64-bit.
public struct Statistics: Hashable, Sendable {
    /// `recv_oct`: bytes delivered to the user.
    public var recvOct: UInt64 = 0
    /// `recv_cnt`: deliveries (`recv` results and `tcp` messages).
    public var recvCnt: UInt64 = 0
    /// `recv_max`: the largest delivery, in bytes.
    public var recvMax: UInt64 = 0
    /// `send_oct`: bytes of successful sends.
    public var sendOct: UInt64 = 0
    /// `send_cnt`: successful `send` calls, empty ones included.
    public var sendCnt: UInt64 = 0
    /// `send_max`: the largest successful send, in bytes.
    public var sendMax: UInt64 = 0
    /// Bytes accepted by a `send` still in progress and not yet handed to the driver, plus bytes
    /// the driver holds and has not delivered yet (a modem's send buffer before `SEND OK`).
    public var sendPend: UInt64 = 0

    /// gen_udp only (GenTCP's own counter): datagrams dropped whole because the socket's receive
    /// queue was full (the driver's bounded queue; on posix, the kernel's count through
    /// `SO_RXQ_OVFL`). OTP counts these nowhere.
    public var recvDropped: UInt64 = 0
    /// gen_udp only (GenTCP's own counter): datagrams delivered cut to `buffer` bytes, their tail
    /// discarded as in OTP. OTP counts these nowhere.
    public var recvTruncated: UInt64 = 0

    /// Every counter at zero.
    public init() {}

    /// Average delivery size (`recv_avg`).
    public var recvAvg: UInt64 { recvCnt == 0 ? 0 : recvOct / recvCnt }
    /// Average send size (`send_avg`).
    public var sendAvg: UInt64 { sendCnt == 0 ? 0 : sendOct / sendCnt }

    /// Records one delivery of `count` bytes to the user.
    public mutating func delivered(_ count: Int) {
        recvOct &+= UInt64(count)
        recvCnt &+= 1
        if UInt64(count) > recvMax { recvMax = UInt64(count) }
    }

    /// Records one successful `send` of `count` bytes.
    public mutating func sent(_ count: Int) {
        sendOct &+= UInt64(count)
        sendCnt &+= 1
        if UInt64(count) > sendMax { sendMax = UInt64(count) }
    }
}
