import GenTCPCore
import GenTCPSerial
import Testing

@Suite("SerialPortLink", .timeLimit(.minutes(1)))
struct SerialPortLinkTests {
    @Test("enumeration runs on this machine; every entry is well-formed (an empty list is fine)")
    func enumeration() throws {
        let ports = try SerialPortLink.availablePorts()
        #expect(ports.map(\.path) == ports.map(\.path).sorted())
        for port in ports {
            #expect(port.path.hasPrefix("/dev/"))
            #expect(!port.description.isEmpty)
            if port.transport != .usb {
                #expect(port.usbID == nil)
            }
        }
        // A second listing agrees (no ports here is a valid answer: an empty list, not an error).
        #expect(try SerialPortLink.availablePorts() == ports)
    }

    @Test("USB IDs print as lsusb does")
    func usbID() {
        let info = SerialPortInfo(path: "/dev/ttyUSB0", description: "CP2102", transport: .usb,
                                  usbVendorID: 0x10C4, usbProductID: 0xEA60)
        #expect(info.usbID == "10c4:ea60")
        #expect(SerialPortInfo(path: "/dev/ttyS0", description: "ttyS0", transport: .native).usbID == nil)
    }

    @Test("a missing path is enoent, and the error names the path and the call")
    func missingPath() {
        do {
            _ = try SerialPortLink(path: "/dev/ttyGENTCP-missing")
            Issue.record("opened a missing port")
        } catch {
            #expect(error.reason == .noSuchFile)
            #expect(error.path == "/dev/ttyGENTCP-missing")
            #expect(error.description.contains("/dev/ttyGENTCP-missing"))
            #expect(error.description.contains("enoent"))
            #expect(error.description.contains("sp_get_port_by_name"))
        }
    }

    @Test("something that is not a serial port (a pty, /dev/null) is enodev, with a hint")
    func notASerialPort() throws {
        let pair = try PTYLink.openPair()
        defer { pair.master.close(); pair.slave.close() }
        for path in [pair.slavePath, "/dev/null"] {
            do {
                _ = try SerialPortLink(path: path)
                Issue.record("libserialport opened \(path)")
            } catch {
                #expect(error.reason == .noSuchDevice)
                #expect(error.description.contains(path))
            }
        }
    }
}
