import Testing
import GenTCP
