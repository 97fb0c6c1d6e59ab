// The alert vocabulary (TLSAlert, TLSAlertOrigin) is GenTCPCore's: importing the engine brings it.
@_exported import GenTCPCore
