import GenTCP
