#!/usr/bin/env bash
# Installs what GenTCP needs on a fresh Debian machine, once. Idempotent and quiet when all is there.
# Needs: the Swift toolchain on PATH (6.2 or later). Installs Debian packages only where missing.
set -euo pipefail

# What building and testing needs: libserialport for the serial links, OpenSSL 3 for the TLS
# engine (libssl-dev; the openssl CLI makes the TLS tests' certificates), pkg-config to find
# them. More packages can be named on the command line (CI adds the test peers).
packages=(libserialport-dev libssl-dev openssl pkg-config "$@")
need=()
have() { dpkg -s "$1" >/dev/null 2>&1; }
for pkg in "${packages[@]}"; do have "$pkg" || need+=("$pkg"); done

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "bootstrap: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "bootstrap: swift is not on PATH (Swift 6.2+ needed)" >&2; exit 1; }
