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
            emit("\r\n+CPIN: READY\r\n\r\nOK\r\n")
        case ("+CGATT", .query):
            // 3GPP TS 27.007 §10.1.9; both SIM800 (manual §7) and BG96 have it.
            emit("\r\n+CGATT: 1\r\n\r\nOK\r\n")
        default: return false
        }
        return true
    }
}
