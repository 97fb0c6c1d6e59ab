print("gentcp")
