import ArgumentParser
import GenTCPSerial

/// `gentcp ports`: the serial ports libserialport finds, one per line.
struct Ports: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List serial ports: path, transport, USB VID:PID, serial number, description.",
        discussion: """
            Ports come from libserialport (sp_list_ports). Pseudo-terminals are not listed (they \
            are not serial devices to libserialport); pass their path to --serial directly.
            """)

    mutating func run() async throws {
        let ports: [SerialPortInfo]
        do {
            ports = try SerialPortLink.availablePorts()
        } catch {
            printError(failureLine(atom: "\(error.reason.atom)", summary: "\(error.reason.summary)",
                                   notes: ["\(error.operation): \(error.message)"]))
            throw ExitCode(Status.failed)
        }
        if ports.isEmpty {
            print("no serial ports found")
            return
        }
        print(Ports.table(ports))
    }

    static func table(_ ports: [SerialPortInfo]) -> String {
        var rows = [["PATH", "TRANSPORT", "VID:PID", "SERIAL", "DESCRIPTION"]]
        for p in ports {
            let maker = [p.manufacturer, p.product].compactMap { $0 }.joined(separator: " ")
            let about = maker.isEmpty ? p.description : "\(p.description) (\(maker))"
            rows.append([p.path, p.transport.rawValue, p.usbID ?? "-", p.serialNumber ?? "-", about])
        }
        var widths = [Int](repeating: 0, count: rows[0].count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
            }.joined()
        }.joined(separator: "\n")
    }
}
