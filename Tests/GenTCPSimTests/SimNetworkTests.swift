import Testing
import GenTCPSim
