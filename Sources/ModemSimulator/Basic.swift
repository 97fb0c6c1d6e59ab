import GenTCPCore

/// Commands every dialect answers the same way.
extension SimState {
    /// V.250 basics: `AT`, `ATE0`, `ATE1`. True when `c` was one of them.
    mutating func basicExecute(_ c: ATCommandLine) -> Bool {
        switch (c.name, c.kind) {
        case ("", .execute): ok()
        case ("E0", .execute):
            echo = false
            ok()
        case ("E1", .execute):
            echo = true
            ok()
        default: return false
        }
        return true
    }

    /// 3GPP TS 27.007 basics of the cellular modules (SIM800, BG96): `+CFUN` (a `1,1` reset
    /// restarts the module) and `+CPIN?`. True when `c` was one of them.
    mutating func cellularExecute(_ c: ATCommandLine) -> Bool {
        switch (c.name, c.kind) {
        case ("+CFUN", .set):
            guard let f = c.int(0) else {
                error()
                return true
            }
            ok()
            if f == 1, c.int(1) == 1 { restart() }
        case ("+CFUN", .query):
            emit("\r\n+CFUN: 1\r\n\r\nOK\r\n")
        case ("+CPIN", .query):
            // SIM-8, BG-13.
            let ready = configuration.faults.noNetwork != .simNotReady
            emit("\r\n+CPIN: \(ready ? "READY" : "NOT READY")\r\n\r\nOK\r\n")
        case ("+CREG", .query), ("+CGREG", .query), ("+CEREG", .query):
            // <n>,<stat>: URCs off; 1 home, 2 searching, 0 not registered and not searching.
            let stat: Int
            switch configuration.faults.noNetwork {
            case .simNotReady: stat = 0
            case .notRegistered: stat = 2
            case .notAttached, nil: stat = 1
            }
            emit("\r\n\(c.name): 0,\(stat)\r\n\r\nOK\r\n")
        case ("+CGATT", .query):
            emit("\r\n+CGATT: \(configuration.faults.noNetwork == nil ? 1 : 0)\r\n\r\nOK\r\n")
        default: return false
        }
        return true
    }
}
