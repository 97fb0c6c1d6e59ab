import CGenTCPShims
import GenTCPCore
#if canImport(Glibc)
import Glibc
#endif

/// Host-name lookup (``HostLookup``), run on its own thread so a slow resolver or file never
/// blocks the cooperative pool.
enum Resolver {
    static func lookup(_ host: String, using source: HostLookup = .system) async -> [IPAddress] {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<[IPAddress], Never>) in
            let job = Job(host: host, source: source, continuation: continuation)
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { arg in
                let job = Unmanaged<Job>.fromOpaque(arg!).takeRetainedValue()
                job.continuation.resume(returning: job.source.addresses(of: job.host))
                return nil
            }, Unmanaged.passRetained(job).toOpaque())
            if rc == 0 {
                pthread_detach(thread)
            } else {
                // No thread to spare: resolve here.
                Unmanaged.passUnretained(job).release()
                continuation.resume(returning: source.addresses(of: host))
            }
        }
    }

    private final class Job: @unchecked Sendable {
        let host: String
        let source: HostLookup
        let continuation: UnsafeContinuation<[IPAddress], Never>
        init(host: String, source: HostLookup, continuation: UnsafeContinuation<[IPAddress], Never>) {
            self.host = host
            self.source = source
            self.continuation = continuation
        }
    }

    /// Every distinct address of `host`, in the resolver's order.
    static func getaddrinfo(_ host: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard Glibc.getaddrinfo(host, nil, &hints, &result) == 0 else { return [] }
        defer { freeaddrinfo(result) }
        var out: [IPAddress] = []
        var cursor = result
        while let info = cursor {
            if let sa = info.pointee.ai_addr, let a = SocketAddress(sockaddr: sa), !out.contains(a.address) {
                out.append(a.address)
            }
            cursor = info.pointee.ai_next
        }
        return out
    }
}
