// The TCP/IP stack lives here.
