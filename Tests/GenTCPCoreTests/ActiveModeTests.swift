import Testing
import GenTCPCore
