import CGenTCPShims
import GenTCP
import GenTCPCore
#if canImport(Glibc)
import Glibc
#endif

extension POSIXDriver: DatagramDriver {
    /// A non-blocking `SOCK_DGRAM` socket bound to `address` (IPv6 sockets are IPv6-only), with
    /// the options that gen_udp sets at open (`SO_REUSEADDR` before the bind, buffers,
    /// broadcast, TTLs, multicast) and the kernel's drop count turned on, registered on the
    /// reactor.
    /// - Throws: `eaddrinuse` when the port is taken (both sockets need `reuseaddr` to share it),
    ///   `eaddrnotavail` for an address that is not local, the `errno` of any other failure.
    public func openDatagram(
        on address: SocketAddress, options: DatagramOptions, delegate: any DatagramDelegate
    ) async throws(SocketError) -> any DatagramEndpoint {
        let fd = try openDatagramSocket(on: address, options: options)
        let endpoint = POSIXDatagramEndpoint(
            fd: fd, isIPv6: address.address.isIPv6, syscalls: syscalls, reactor: reactor,
            delegate: delegate, briefWait: briefWaitSettings)
        endpoint.start()
        return endpoint
    }

    /// `socket(2)`, the options, `bind(2)`; the descriptor is closed when any of it fails.
    private func openDatagramSocket(on address: SocketAddress, options: DatagramOptions) throws(SocketError) -> Int32 {
        let isIPv6 = address.address.isIPv6
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = syscalls.socket(isIPv6 ? AF_INET6 : AF_INET, type, 0)
        guard fd >= 0 else { throw SocketError(SocketError.Reason(errno: cgentcp_errno())) }
        do throws(SocketError) {
            if isIPv6 {
                // As OTP opens it: an IPv6 socket carries IPv6 only.
                try DatagramSocketOptions.check(DatagramSocketOptions.setInt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1))
            }
            for option in DatagramSocketOptions.atOpen(options) {
                try DatagramSocketOptions.check(DatagramSocketOptions.apply(option, to: fd, isIPv6: isIPv6))
            }
            // Best effort: an old kernel without it reports no drops.
            _ = cgentcp_enable_drop_count(fd)
            if address.withSockaddr({ syscalls.bind(fd, $0, $1) }) != 0 {
                throw SocketError(SocketError.Reason(errno: cgentcp_errno()))
            }
        } catch {
            _ = syscalls.close(fd)
            throw error
        }
        return fd
    }
}

/// The socket options of a gen_udp socket, as `setsockopt(2)` calls.
enum DatagramSocketOptions {
    /// The options `DatagramOptions` holds that differ from the kernel's defaults.
    static func atOpen(_ o: DatagramOptions) -> [Option] {
        var out: [Option] = []
        if o.reuseaddr { out.append(.reuseaddr(true)) }
        if let r = o.recbuf { out.append(.recbuf(r)) }
        if let s = o.sndbuf { out.append(.sndbuf(s)) }
        if o.broadcast { out.append(.broadcast(true)) }
        if let t = o.ttl { out.append(.ttl(t)) }
        if o.multicastTTL != 1 { out.append(.multicastTTL(o.multicastTTL)) }
        if !o.multicastLoop { out.append(.multicastLoop(false)) }
        if let i = o.multicastInterface { out.append(.multicastInterface(i)) }
        return out
    }

    /// Throws a reason as a `SocketError`.
    static func check(_ reason: SocketError.Reason?) throws(SocketError) {
        if let reason { throw SocketError(reason) }
    }

    /// Applies one option; nil on success or for an option the kernel has no part in.
    static func apply(_ option: Option, to fd: Int32, isIPv6: Bool) -> SocketError.Reason? {
        let ip = Int32(isIPv6 ? IPPROTO_IPV6 : IPPROTO_IP)
        switch option {
        case .reuseaddr(let on): return setInt(fd, SOL_SOCKET, SO_REUSEADDR, on ? 1 : 0)
        case .recbuf(let bytes): return setInt(fd, SOL_SOCKET, SO_RCVBUF, Int32(bytes))
        case .sndbuf(let bytes): return setInt(fd, SOL_SOCKET, SO_SNDBUF, Int32(bytes))
        case .broadcast(let on): return setInt(fd, SOL_SOCKET, SO_BROADCAST, on ? 1 : 0)
        case .ttl(let t): return setInt(fd, ip, isIPv6 ? IPV6_UNICAST_HOPS : IP_TTL, Int32(t))
        case .multicastTTL(let t):
            if isIPv6 { return setInt(fd, ip, IPV6_MULTICAST_HOPS, Int32(t)) }
            return setValue(fd, ip, IP_MULTICAST_TTL, UInt8(t))
        case .multicastLoop(let on):
            if isIPv6 { return setInt(fd, ip, IPV6_MULTICAST_LOOP, on ? 1 : 0) }
            return setValue(fd, ip, IP_MULTICAST_LOOP, UInt8(on ? 1 : 0))
        case .multicastInterface(let a): return setMulticastInterface(fd, a)
        case .addMembership(let group, let interface): return membership(fd, group, interface, join: true)
        case .dropMembership(let group, let interface): return membership(fd, group, interface, join: false)
        default: return nil
        }
    }

    /// `IP_MULTICAST_IF` with the interface's address, or `IPV6_MULTICAST_IF` with its index.
    private static func setMulticastInterface(_ fd: Int32, _ a: IPAddress) -> SocketError.Reason? {
        switch a {
        case .v4(let v):
            return setValue(fd, Int32(IPPROTO_IP), IP_MULTICAST_IF, in_addr(s_addr: v.bigEndian))
        case .v6:
            guard let index = interfaceIndex(of: a) else { return .addressNotAvailable }
            return setInt(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_IF, Int32(bitPattern: index))
        }
    }

    /// `IP_ADD_MEMBERSHIP`/`IP_DROP_MEMBERSHIP` (`ip_mreq`: the group on the interface with that
    /// address), or their IPv6 forms (the interface by index; the unspecified address is 0,
    /// the kernel's choice).
    private static func membership(_ fd: Int32, _ group: IPAddress, _ interface: IPAddress, join: Bool) -> SocketError.Reason? {
        switch (group, interface) {
        case (.v4(let g), .v4(let i)):
            let request = ip_mreq(imr_multiaddr: in_addr(s_addr: g.bigEndian), imr_interface: in_addr(s_addr: i.bigEndian))
            return setValue(fd, Int32(IPPROTO_IP), join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, request)
        case (.v6, .v6):
            guard let index = interfaceIndex(of: interface) else { return .addressNotAvailable }
            var request = ipv6_mreq()
            let bytes = group.bytes
            withUnsafeMutableBytes(of: &request.ipv6mr_multiaddr) { raw in
                for i in 0..<16 { raw[i] = bytes[i] }
            }
            request.ipv6mr_interface = index
            return setValue(fd, Int32(IPPROTO_IPV6), join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, request)
        default:
            return .invalidArgument
        }
    }

    /// The index of the interface holding `address`; 0 for the unspecified address (the
    /// kernel chooses); nil when no interface holds it.
    static func interfaceIndex(of address: IPAddress) -> UInt32? {
        if address == .anyV6 || address == .anyV4 { return 0 }
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var cursor = list
        while let entry = cursor {
            if let sa = entry.pointee.ifa_addr, let a = SocketAddress(sockaddr: sa), a.address == address,
               let name = entry.pointee.ifa_name {
                let index = if_nametoindex(name)
                if index != 0 { return index }
            }
            cursor = entry.pointee.ifa_next
        }
        return nil
    }

    /// `setsockopt(2)` with an `int`.
    static func setInt(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) -> SocketError.Reason? {
        setValue(fd, level, name, value)
    }

    /// `setsockopt(2)` with any plain value.
    static func setValue<T>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: T) -> SocketError.Reason? {
        let rc = withUnsafeBytes(of: value) { setsockopt(fd, level, name, $0.baseAddress, socklen_t($0.count)) }
        if rc == 0 { return nil }
        return SocketError.Reason(errno: cgentcp_errno())
    }

    /// `getsockopt(2)` of an `int`, or nil when it fails.
    static func intValue(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int? {
        var v: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, level, name, &v, &length) == 0 else { return nil }
        return Int(v)
    }
}
