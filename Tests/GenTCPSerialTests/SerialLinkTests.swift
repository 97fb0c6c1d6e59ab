import Testing
import GenTCPSerial
