import Testing
import GenTCPWire
