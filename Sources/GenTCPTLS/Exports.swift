// Importing GenTCPTLS brings the port layer (Socket, ListenSocket) and its vocabulary with it.
@_exported import GenTCP
@_exported import GenTCPCore
