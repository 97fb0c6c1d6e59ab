import CSerialPort
import GenTCPCore
#if canImport(Glibc)
import Glibc
#endif

/// What a failed `sp_` call said: its `sp_return` code, and for `SP_ERR_FAIL` the OS error and
/// libserialport's message.
struct SPFailure: Error {
    var reason: SocketError.Reason
    var message: String

    /// Builds the failure for a negative `sp_return`. For `SP_ERR_FAIL` reads
    /// `sp_last_error_code` and `sp_last_error_message` (freed with `sp_free_error_message`).
    init(_ code: sp_return) {
        switch code {
        case SP_ERR_FAIL:
            let errno = sp_last_error_code()
            reason = SocketError.Reason(serialErrno: errno)
            if let text = sp_last_error_message() {
                message = String(cString: text)
                sp_free_error_message(text)
            } else {
                message = "error \(errno)"
            }
        case SP_ERR_ARG:
            reason = .invalidArgument
            message = "libserialport: invalid argument (SP_ERR_ARG)"
        case SP_ERR_MEM:
            reason = .outOfMemory
            message = "libserialport: memory allocation failed (SP_ERR_MEM)"
        case SP_ERR_SUPP:
            reason = .notSupported
            message = "libserialport: not supported on this port or platform (SP_ERR_SUPP)"
        default:
            reason = .ioError
            message = "libserialport: unexpected result \(code.rawValue)"
        }
    }

    /// Throws when `code` is negative; returns it (a count, for I/O calls) otherwise.
    @discardableResult
    static func check(_ code: sp_return) throws(SPFailure) -> Int {
        if code.rawValue < 0 { throw SPFailure(code) }
        return Int(code.rawValue)
    }
}

/// One libserialport port (`struct sp_port *`). Thin wrappers: each names the `sp_` call it
/// makes. Not thread-safe by itself; ``SerialPortLink`` serialises the calls.
struct SPPort: @unchecked Sendable {
    let raw: OpaquePointer

    /// Looks a port up by name: `sp_get_port_by_name`. Free it with ``free()``.
    static func byName(_ name: String) throws(SPFailure) -> SPPort {
        var port: OpaquePointer?
        try SPFailure.check(sp_get_port_by_name(name, &port))
        guard let port else { throw SPFailure(SP_ERR_MEM) }
        return SPPort(raw: port)
    }

    /// `sp_free_port`.
    func free() { sp_free_port(raw) }

    /// Opens for reading and writing: `sp_open(port, SP_MODE_READ_WRITE)`.
    func openReadWrite() throws(SPFailure) { try SPFailure.check(sp_open(raw, SP_MODE_READ_WRITE)) }

    /// `sp_close`.
    func close() { _ = sp_close(raw) }

    /// `sp_set_baudrate`.
    func setBaudRate(_ baud: Int) throws(SPFailure) { try SPFailure.check(sp_set_baudrate(raw, Int32(clamping: baud))) }

    /// 8N1: `sp_set_bits(8)`, `sp_set_parity(SP_PARITY_NONE)`, `sp_set_stopbits(1)`.
    func setFrame8N1() throws(SPFailure) {
        try SPFailure.check(sp_set_bits(raw, 8))
        try SPFailure.check(sp_set_parity(raw, SP_PARITY_NONE))
        try SPFailure.check(sp_set_stopbits(raw, 1))
    }

    /// `sp_set_flowcontrol`.
    func setFlowControl(_ flow: FlowControl) throws(SPFailure) {
        let value: sp_flowcontrol = switch flow {
        case .none: SP_FLOWCONTROL_NONE
        case .rtsCts: SP_FLOWCONTROL_RTSCTS
        case .xonXoff: SP_FLOWCONTROL_XONXOFF
        case .dtrDsr: SP_FLOWCONTROL_DTRDSR
        }
        try SPFailure.check(sp_set_flowcontrol(raw, value))
    }

    /// The OS handle, a descriptor that is already `O_NONBLOCK`: `sp_get_port_handle`.
    func handle() throws(SPFailure) -> Int32 {
        var fd: Int32 = -1
        let code = withUnsafeMutablePointer(to: &fd) { sp_get_port_handle(raw, UnsafeMutableRawPointer($0)) }
        try SPFailure.check(code)
        return fd
    }

    /// `sp_nonblocking_read`: a count (0 when nothing is waiting, and also on a hung-up line)
    /// or a negative errno.
    func nonblockingRead(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        ioResult(sp_nonblocking_read(raw, buffer.baseAddress, buffer.count))
    }

    /// `sp_nonblocking_write`: a count or a negative errno.
    func nonblockingWrite(_ bytes: UnsafeRawBufferPointer) -> Int {
        ioResult(sp_nonblocking_write(raw, bytes.baseAddress, bytes.count))
    }

    /// `sp_set_dtr`.
    func setDTR(_ on: Bool) throws(SPFailure) { try SPFailure.check(sp_set_dtr(raw, on ? SP_DTR_ON : SP_DTR_OFF)) }

    /// `sp_set_rts`.
    func setRTS(_ on: Bool) throws(SPFailure) { try SPFailure.check(sp_set_rts(raw, on ? SP_RTS_ON : SP_RTS_OFF)) }

    /// `sp_drain`: blocks until everything written has left the UART.
    func drain() throws(SPFailure) { try SPFailure.check(sp_drain(raw)) }

    /// `sp_flush(SP_BUF_BOTH)`: discards unread input and unsent output.
    func flush() throws(SPFailure) { try SPFailure.check(sp_flush(raw, SP_BUF_BOTH)) }

    private func ioResult(_ code: sp_return) -> Int {
        if code.rawValue >= 0 { return Int(code.rawValue) }
        if code == SP_ERR_FAIL { return -Int(sp_last_error_code()) }
        return -Int(code == SP_ERR_SUPP ? ENOTSUP : EINVAL)
    }

    // MARK: Port metadata

    /// `sp_get_port_name`.
    var name: String? { sp_get_port_name(raw).map { String(cString: $0) } }
    /// `sp_get_port_description`.
    var portDescription: String? { sp_get_port_description(raw).map { String(cString: $0) } }
    /// `sp_get_port_transport`.
    var transport: sp_transport { sp_get_port_transport(raw) }
    /// `sp_get_port_usb_vid_pid`.
    var usbVendorAndProduct: (vendor: UInt16, product: UInt16)? {
        var vid: Int32 = 0, pid: Int32 = 0
        guard sp_get_port_usb_vid_pid(raw, &vid, &pid) == SP_OK else { return nil }
        return (UInt16(truncatingIfNeeded: vid), UInt16(truncatingIfNeeded: pid))
    }
    /// `sp_get_port_usb_manufacturer`.
    var usbManufacturer: String? { sp_get_port_usb_manufacturer(raw).map { String(cString: $0) } }
    /// `sp_get_port_usb_product`.
    var usbProduct: String? { sp_get_port_usb_product(raw).map { String(cString: $0) } }
    /// `sp_get_port_usb_serial`.
    var usbSerialNumber: String? { sp_get_port_usb_serial(raw).map { String(cString: $0) } }
    /// `sp_get_port_bluetooth_address`.
    var bluetoothAddress: String? { sp_get_port_bluetooth_address(raw).map { String(cString: $0) } }

    /// Every port libserialport finds: `sp_list_ports`, then `sp_free_port_list`. The ports
    /// are valid only inside `body`.
    static func withAllPorts<R>(_ body: ([SPPort]) -> R) throws(SPFailure) -> R {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        try SPFailure.check(sp_list_ports(&list))
        guard let list else { return body([]) }
        defer { sp_free_port_list(list) }
        var ports: [SPPort] = []
        var i = 0
        while let port = list[i] {
            ports.append(SPPort(raw: port))
            i += 1
        }
        return body(ports)
    }
}
