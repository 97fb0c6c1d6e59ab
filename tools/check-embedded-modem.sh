#!/bin/sh
# Proves GenTCPBoard's ModemInterface builds and runs in Embedded Swift: Embedded Swift compiles
# generic code only where it is specialised, so compiling GenTCPBoard alone (tools/check-embedded.sh)
# does not check ModemInterface<ESPATDialect>. This builds tools/embedded-modem-smoke/main.swift,
# which uses every entry point, for each microcontroller triple (object only; undefined symbols
# checked against the board runtime's allow-list and the Unicode tables), then for the host,
# links it and runs it against its scripted ESP-AT module.
#
# Usage: tools/check-embedded-modem.sh        (from anywhere; works in the package root)
# Exit:  non-zero on a compile error, an unexpected symbol, or a failing smoke run.
set -eu

MODULES="GenTCPCore GenTCPWire GenTCPStack GenTCPModem GenTCPBoard"
TRIPLES="armv7em-none-none-eabi riscv32-none-none-eabi"
# The allow-list of tools/check-embedded.sh, plus the smoke program's own exit and aligned_alloc
# (its counting posix_memalign forwards to it).
ALLOWED='^(exit|aligned_alloc|memcpy|memmove|memset|memcmp|posix_memalign|free|putchar|arc4random_buf|__aeabi_[a-z0-9]+|__stack_chk_(fail|guard)|__[a-z]+[sdt]i[234])$'

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/.build/embedded-modem-check"
SMOKE="$ROOT/tools/embedded-modem-smoke/main.swift"
TOOLBIN=$(dirname "$(readlink -f "$(command -v swiftc)")")
NM="$TOOLBIN/llvm-nm"
FLAGS="-swift-version 6 -warnings-as-errors -enable-experimental-feature Embedded -wmo -parse-as-library -Osize"
fail() { echo "check-embedded-modem: $*" >&2; exit 1; }

rm -rf "$OUT"
for triple in $TRIPLES x86_64-unknown-linux-gnu; do
    dir="$OUT/$triple"
    mkdir -p "$dir"
    objects=""
    for module in $MODULES; do
        # shellcheck disable=SC2086
        swiftc -target "$triple" $FLAGS -module-name "$module" -I "$dir" \
            -emit-module -emit-module-path "$dir/$module.swiftmodule" \
            -c "$ROOT"/Sources/"$module"/*.swift -o "$dir/$module.o" || fail "$module for $triple failed to compile"
        objects="$objects $dir/$module.o"
    done
    if [ "$triple" = x86_64-unknown-linux-gnu ]; then
        # shellcheck disable=SC2086
        swiftc -target "$triple" $FLAGS -module-name EmbeddedModemSmoke -I "$dir" "$SMOKE" $objects -o "$dir/smoke" ||
            fail "the smoke program failed to build for the host"
        "$dir/smoke" || fail "the smoke run failed (exit $?)"
        continue
    fi
    # shellcheck disable=SC2086
    swiftc -target "$triple" $FLAGS -module-name EmbeddedModemSmoke -I "$dir" -c "$SMOKE" -o "$dir/smoke.o" ||
        fail "the smoke program failed to compile for $triple"
    "$NM" -u -j "$dir/smoke.o" | sort -u > "$dir/undefined"
    # shellcheck disable=SC2086
    "$NM" --defined-only -j $objects | sort -u > "$dir/provided"
    unicode="$TOOLBIN/../lib/swift/embedded/$triple/libswiftUnicodeDataTables.a"
    if [ -f "$unicode" ]; then "$NM" --defined-only -j "$unicode" 2>/dev/null | sort -u > "$dir/unicode"; else : > "$dir/unicode"; fi
    tables=$(comm -12 "$dir/undefined" "$dir/unicode")
    [ -z "$tables" ] || fail "ModemInterface on $triple links the Unicode tables (String comparison or hashing): $tables"
    bad=$(grep -Ev "$ALLOWED" "$dir/undefined" | comm -23 - "$dir/provided" || true)
    [ -z "$bad" ] || fail "ModemInterface on $triple needs symbols outside the allow-list: $bad"
    echo "check-embedded-modem: $triple ok"
done
