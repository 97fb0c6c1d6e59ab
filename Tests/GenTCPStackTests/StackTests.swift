import Testing
import GenTCPStack
