import Testing
import GenTCPModem
