import Testing
import ModemSimulator
