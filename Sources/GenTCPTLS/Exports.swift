// Importing GenTCPTLS brings the engine's configuration types, the port layer (Socket,
// ListenSocket) and its vocabulary with it.
@_exported import GenTCP
@_exported import GenTCPCore
@_exported import GenTCPTLSEngine
