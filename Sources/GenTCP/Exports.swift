/// `import GenTCP` brings GenTCPCore's vocabulary with it (`SocketError`, `Option`,
/// `IPAddress`, `Payload`...): every socket call names those types.
@_exported import GenTCPCore
