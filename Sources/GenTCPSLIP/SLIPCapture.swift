import GenTCPSerial
import GenTCPCore
import GenTCPWire
#if canImport(Glibc)
import Glibc
#endif

/// A pcap file (LINKTYPE_RAW) that a ``SLIPDriver`` appends every datagram to, both directions.
/// Used only under the driver's lock; stdio buffers the writes, ``close()`` flushes.
final class SLIPCapture {
    private var file: UnsafeMutablePointer<FILE>?
    private var scratch = [UInt8](repeating: 0, count: Pcap.recordHeaderLength + 65536)
    private(set) var records = 0

    /// Creates (truncates) `path` and writes the file header.
    init(path: String) throws(SocketError) {
        guard let file = fopen(path, "wb") else {
            throw SocketError(errno == EACCES ? .permissionDenied : .noSuchFile, "cannot create the capture file")
        }
        self.file = file
        var header = [UInt8](repeating: 0, count: Pcap.fileHeaderLength)
        header.withUnsafeMutableBytes { _ = try? Pcap.writeFileHeader(into: $0) }
        _ = header.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    }

    deinit { close() }

    /// Appends one datagram stamped `microseconds` (the runtime's clock).
    func record(_ packet: UnsafeRawBufferPointer, microseconds: UInt64) {
        guard let file else { return }
        let n = scratch.withUnsafeMutableBytes { (try? Pcap.writeRecord(into: $0, packet: packet, timestamp: microseconds)) ?? 0 }
        if n > 0 {
            _ = scratch.withUnsafeBytes { fwrite($0.baseAddress, 1, n, file) }
            records += 1
        }
    }

    func flush() {
        if let file { fflush(file) }
    }

    func close() {
        if let file { fclose(file) }
        file = nil
    }
}
