import CGenTCPShims
import CSerialPort
import GenTCPCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A serial link over a real port (a UART, a USB serial adapter, a Bluetooth serial port),
/// through libserialport.
///
/// Opening looks the port up (`sp_get_port_by_name`), opens it (`sp_open`) and sets the baud
/// rate (any value the UART accepts), 8N1 and flow control (`sp_set_*`). Reads and writes are
/// `sp_nonblocking_read`/`sp_nonblocking_write`; readiness comes from the port's descriptor
/// (`sp_get_port_handle`) in the reactor. Because libserialport's reads return 0 on a hung-up
/// line (unplugged adapter), hang-up is detected from `POLLHUP` on the descriptor, never from the
/// read result.
///
/// libserialport refuses ptys (see ``PTYLink``); ``availablePorts()`` lists the ports it knows.
/// Set `LIBSERIALPORT_DEBUG=1` in the environment to see libserialport's own trace.
///
/// See ``SerialLink`` for the threading rules.
public final class SerialPortLink: SerialLink {
    public let configuration: SerialConfiguration
    /// The device path the port was opened by.
    public let path: String
    private let port: SPPort
    private let channel: DescriptorChannel

    /// Opens a port by path, 8N1, with the given baud rate and flow control.
    ///
    /// Calls `sp_get_port_by_name`, `sp_open(SP_MODE_READ_WRITE)`, `sp_set_baudrate`,
    /// `sp_set_bits`, `sp_set_parity`, `sp_set_stopbits`, `sp_set_flowcontrol` and
    /// `sp_get_port_handle`.
    /// - Throws: ``SerialLinkError`` naming the path and the failing call, with libserialport's
    ///   message: `enoent` when nothing is at the path; `enodev` when something is, but
    ///   libserialport does not know it as a serial port (a pty, `/dev/null`); `eacces` without
    ///   permission (on Debian, join the `dialout` group); `ebusy` when the port is held
    ///   exclusively; `enotsup` for ``FlowControl/dtrDsr`` on Linux; `einval` for a baud rate
    ///   the port refuses.
    public init(path: String, configuration: SerialConfiguration = SerialConfiguration()) throws(SerialLinkError) {
        let port: SPPort
        do {
            port = try SPPort.byName(path)
        } catch {
            var status = stat()
            if stat(path, &status) != 0 {
                let code = cgentcp_errno()
                throw SerialLinkError(SocketError.Reason(serialErrno: code), path: path,
                                      operation: "sp_get_port_by_name", message: String(cString: strerror(code)))
            }
            throw SerialLinkError(error.reason == .invalidArgument ? .noSuchDevice : error.reason, path: path,
                                  operation: "sp_get_port_by_name",
                                  message: "libserialport does not know it as a serial port (ptys need PTYLink)")
        }
        var step = "sp_open"
        do throws(SPFailure) {
            try port.openReadWrite()
            do throws(SPFailure) {
                step = "sp_set_baudrate"
                try port.setBaudRate(configuration.baudRate)
                step = "sp_set_bits/parity/stopbits"
                try port.setFrame8N1()
                step = "sp_set_flowcontrol"
                try port.setFlowControl(configuration.flowControl)
                step = "sp_get_port_handle"
                let fd = try port.handle()
                self.configuration = configuration
                self.path = path
                self.port = port
                channel = DescriptorChannel(fd: fd)
            } catch {
                port.close()
                throw error
            }
        } catch {
            port.free()
            throw SerialLinkError(error.reason, path: path, operation: step, message: error.message)
        }
        channel.start(owner: self)
    }

    deinit { close() }

    public func setDelegate(_ delegate: (any SerialLinkDelegate)?) { channel.setDelegate(delegate) }

    /// `sp_nonblocking_read`; see ``SerialLink/read(into:)``.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> LinkIO {
        if buffer.isEmpty { return channel.isClosed ? .failed(.closed) : .bytes(0) }
        let port = self.port
        return channel.transfer { _ in port.nonblockingRead(buffer) }
    }

    /// `sp_nonblocking_write`; see ``SerialLink/write(_:)``.
    public func write(_ bytes: UnsafeRawBufferPointer) -> LinkIO {
        if bytes.isEmpty { return channel.isClosed ? .failed(.closed) : .bytes(0) }
        let port = self.port
        return channel.transfer { _ in port.nonblockingWrite(bytes) }
    }

    public func armRead() { channel.arm(read: true, write: false) }
    public func armWrite() { channel.arm(read: false, write: true) }

    /// Deregisters from the reactor, then `sp_close` and `sp_free_port`.
    public func close() {
        let port = self.port
        channel.close { _ in
            port.close()
            port.free()
        }
    }

    /// Sets the DTR line (`sp_set_dtr`). Many AT modems hang up a call when DTR drops.
    public func setDTR(_ on: Bool) throws(SerialLinkError) {
        try control("sp_set_dtr") { () throws(SPFailure) in try port.setDTR(on) }
    }

    /// Sets the RTS line (`sp_set_rts`); with RTS/CTS flow control the driver owns RTS.
    public func setRTS(_ on: Bool) throws(SerialLinkError) {
        try control("sp_set_rts") { () throws(SPFailure) in try port.setRTS(on) }
    }

    /// Discards unread input and unsent output (`sp_flush(SP_BUF_BOTH)`).
    public func flush() throws(SerialLinkError) {
        try control("sp_flush") { () throws(SPFailure) in try port.flush() }
    }

    private func control(_ operation: String, _ body: () throws(SPFailure) -> Void) throws(SerialLinkError) {
        var failure: SPFailure?
        let open = channel.withOpenDescriptor { _ in
            do throws(SPFailure) { try body() } catch { failure = error }
        }
        guard open else { throw SerialLinkError(.closed, path: path, operation: operation, message: "link closed") }
        if let failure { throw SerialLinkError(failure.reason, path: path, operation: operation, message: failure.message) }
    }

    /// E.g. `serial /dev/ttyUSB0 (115200 8N1, flow none)`.
    public var description: String { "serial \(path) (\(configuration))" }
}
