import CSerialPort

/// How a serial port is attached, as libserialport reports it (`sp_get_port_transport`).
public enum SerialTransport: String, Hashable, Sendable {
    /// A native port: an on-board UART (`SP_TRANSPORT_NATIVE`).
    case native
    /// A USB serial adapter or a USB CDC-ACM device (`SP_TRANSPORT_USB`).
    case usb
    /// A Bluetooth serial port (`SP_TRANSPORT_BLUETOOTH`).
    case bluetooth
}

/// One port found by ``SerialPortLink/availablePorts()``: what `gentcp ports` prints.
public struct SerialPortInfo: Hashable, Sendable, CustomStringConvertible {
    /// The device path to open, e.g. `/dev/ttyUSB0` (`sp_get_port_name`).
    public var path: String
    /// A human description, e.g. `CP2102 USB to UART Bridge Controller` (`sp_get_port_description`).
    public var description: String
    /// How the port is attached (`sp_get_port_transport`).
    public var transport: SerialTransport
    /// The USB vendor ID, for USB ports (`sp_get_port_usb_vid_pid`).
    public var usbVendorID: UInt16?
    /// The USB product ID, for USB ports (`sp_get_port_usb_vid_pid`).
    public var usbProductID: UInt16?
    /// The USB manufacturer string (`sp_get_port_usb_manufacturer`).
    public var manufacturer: String?
    /// The USB product string (`sp_get_port_usb_product`).
    public var product: String?
    /// The USB serial number (`sp_get_port_usb_serial`).
    public var serialNumber: String?
    /// The Bluetooth MAC address, for Bluetooth ports (`sp_get_port_bluetooth_address`).
    public var bluetoothAddress: String?

    /// A port description with every field as named (``SerialPortLink/availablePorts()`` makes
    /// them from libserialport; tests may build their own).
    public init(path: String, description: String, transport: SerialTransport,
                usbVendorID: UInt16? = nil, usbProductID: UInt16? = nil, manufacturer: String? = nil,
                product: String? = nil, serialNumber: String? = nil, bluetoothAddress: String? = nil) {
        self.path = path
        self.description = description
        self.transport = transport
        self.usbVendorID = usbVendorID
        self.usbProductID = usbProductID
        self.manufacturer = manufacturer
        self.product = product
        self.serialNumber = serialNumber
        self.bluetoothAddress = bluetoothAddress
    }

    /// `VVVV:PPPP` in lowercase hex (as `lsusb` prints it), for USB ports; else nil.
    public var usbID: String? {
        guard let vendor = usbVendorID, let product = usbProductID else { return nil }
        return hex4(vendor) + ":" + hex4(product)
    }

    private func hex4(_ value: UInt16) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

extension SerialPortLink {
    /// The serial ports libserialport finds on this machine (`sp_list_ports`), sorted by path;
    /// empty when there are none. Ptys are never listed.
    /// - Throws: ``SerialLinkError`` (path `(enumeration)`) when libserialport cannot list ports.
    public static func availablePorts() throws(SerialLinkError) -> [SerialPortInfo] {
        do throws(SPFailure) {
            let ports = try SPPort.withAllPorts { ports in ports.map(info(for:)) }
            return ports.sorted { $0.path < $1.path }
        } catch {
            throw SerialLinkError(error.reason, path: "(enumeration)", operation: "sp_list_ports", message: error.message)
        }
    }

    private static func info(for port: SPPort) -> SerialPortInfo {
        let path = port.name ?? "?"
        let transport: SerialTransport = switch port.transport {
        case SP_TRANSPORT_USB: .usb
        case SP_TRANSPORT_BLUETOOTH: .bluetooth
        default: .native
        }
        var info = SerialPortInfo(path: path, description: port.portDescription ?? path, transport: transport)
        switch transport {
        case .usb:
            if let ids = port.usbVendorAndProduct {
                info.usbVendorID = ids.vendor
                info.usbProductID = ids.product
            }
            info.manufacturer = port.usbManufacturer
            info.product = port.usbProduct
            info.serialNumber = port.usbSerialNumber
        case .bluetooth:
            info.bluetoothAddress = port.bluetoothAddress
        case .native:
            break
        }
        return info
    }
}
