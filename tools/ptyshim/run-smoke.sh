#!/bin/sh
# Builds the ptyshim with the Swift toolchain's clang and runs the SerialPortLink smoke tests on
# a pty under LD_PRELOAD. Without the shim those tests are skipped (libserialport refuses ptys).
set -eu
cd "$(dirname "$0")/../.."
OUT=.build/ptyshim
mkdir -p "$OUT"
CLANG="$(dirname "$(command -v swiftc)")/clang"
"$CLANG" -shared -fPIC -O2 -Wall -Werror -o "$OUT/libptyshim.so" tools/ptyshim/ptyshim.c -ldl
swift build --build-tests
GENTCP_PTYSHIM=1 LD_PRELOAD="$PWD/$OUT/libptyshim.so" swift test --skip-build --filter "SerialPortLinkOnPTY"
