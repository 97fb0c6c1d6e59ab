// SLIP codec lives here.
