#!/bin/sh
# Proves the embedded-safe modules build with Embedded Swift for microcontrollers.
#
# For every module in MODULES and every triple in TRIPLES: compile the module's sources as one
# Embedded Swift object (-wmo -Osize), check its undefined symbols against ALLOWED (plus symbols
# defined by the modules it imports, and the toolchain's Unicode data tables), and print a size
# table. Then build tools/embedded-smoke/main.swift in Embedded mode for the host, link it with
# the modules it imports, and run it; then build tools/embedded-alloc (the same, with counted
# posix_memalign/malloc/free) and check that the stack allocates nothing once a socket is open,
# and nothing after init when preallocated; then hold GenTCPStack's deepest call chains on armv7em
# to a 2 KiB stack budget (tools/stack-frames.sh). Every module is also checked for the standard
# library's variadic min/max, which allocates on every call in Embedded Swift.
#
# Then, when the cross toolchains are installed, builds the QEMU firmware (tools/firmware.sh) and
# prints its linked sizes, which are what a board's flash holds.
#
# Usage: tools/check-embedded.sh        (from anywhere; works in the package root)
# Env:   SIZE_TOOL=objdump forces the llvm-objdump fallback for sizes.
# Exit:  non-zero on a compile error, an unexpected symbol, a variadic min/max, a failing smoke
#        test or an allocation where none may be.
set -eu

# Embedded-safe modules, in dependency order: a module must come after every module it imports.
MODULES="GenTCPCore GenTCPWire GenTCPStack GenTCPModem GenTCPBoard GenTCPBoardPrograms"
# Microcontroller triples to compile for.
TRIPLES="armv7em-none-none-eabi riscv32-none-none-eabi"
# Symbols a board's C runtime (libc, compiler-rt) must provide; anything else is an error.
ALLOWED='^(memcpy|memmove|memset|memcmp|posix_memalign|free|putchar|arc4random_buf|__aeabi_[a-z0-9]+|__stack_chk_(fail|guard)|__[a-z]+[sdt]i[234])$'

# Mangled names of the standard library's variadic `min`/`max` (`min(_:_:_:_:)`, A...), as
# emitted by Embedded ($e) or regular ($s) Swift, specialised or not.
VARIADIC_MINMAX='^_?\$[es]s3(min|max)yxx_xxxdtSLRzlF'

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/.build/embedded-check"
SMOKE="$ROOT/tools/embedded-smoke/main.swift"
ALLOC="$ROOT/tools/embedded-alloc/main.swift"
SWIFTC=$(command -v swiftc)
TOOLBIN=$(dirname "$(readlink -f "$SWIFTC")")
NM="$TOOLBIN/llvm-nm"          # the toolchain's copy: Debian's llvm may be older, or absent
OBJDUMP="$TOOLBIN/llvm-objdump"
EMBEDDED_LIBS="$TOOLBIN/../lib/swift/embedded"
FLAGS="-swift-version 6 -warnings-as-errors -enable-experimental-feature Embedded -wmo -parse-as-library -Osize"

rm -rf "$OUT"
mkdir -p "$OUT"
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
fail() { echo "check-embedded: $*" >&2; exit 1; }

# The GenTCP* modules (from MODULES) that the given Swift files import.
imports_of() {
    sed -n 's/^[[:space:]]*\(@[_a-zA-Z]*[[:space:]]*\)*import[[:space:]][[:space:]]*\([A-Za-z0-9_]*\).*/\2/p' "$@" | sort -u |
        while read -r m; do
            case " $MODULES " in *" $m "*) echo "$m" ;; esac
        done
}

# The modules needed to link the given files: their imports, and their imports' imports.
closure_of() {
    todo=$(imports_of "$@")
    done_=""
    while [ -n "$todo" ]; do
        next=""
        for m in $todo; do
            case " $done_ " in *" $m "*) continue ;; esac
            done_="$done_ $m"
            next="$next $(imports_of "$ROOT"/Sources/"$m"/*.swift)"
        done
        todo=$(echo "$next" | xargs -n1 2>/dev/null | sort -u || true)
    done
    # Print in MODULES order (dependency order) for the linker.
    for m in $MODULES; do
        case " $done_ " in *" $m "*) echo "$m" ;; esac
    done
}

# Source check too: an inlined variadic call leaves no symbol behind. Flags `min(`/`max(` calls
# with three or more top-level arguments on one line (the modules' style keeps them on one).
variadic_calls() {
    awk '{
        line = $0; n = length(line)
        for (i = 1; i <= n - 3; i++) {
            w = substr(line, i, 4)
            if ((w == "min(" || w == "max(") && (i == 1 || substr(line, i - 1, 1) !~ /[A-Za-z0-9_.]/)) {
                depth = 1; commas = 0
                for (j = i + 4; j <= n && depth > 0; j++) {
                    c = substr(line, j, 1)
                    if (c == "(" || c == "[") depth++
                    else if (c == ")" || c == "]") depth--
                    else if (c == "," && depth == 1) commas++
                }
                if (commas >= 2) { print FILENAME ":" FNR ": " line; break }
            }
        }
    }' "$@"
}

# "text data bss" of an object file, as llvm-size's Berkeley format counts them.
sizes_of() {
    if [ "${SIZE_TOOL:-}" != objdump ] && command -v llvm-size >/dev/null 2>&1; then
        llvm-size "$1" | awk 'NR == 2 { print $1, $2, $3 }'
    else
        # llvm-objdump -h gives names and TEXT/DATA/BSS types but no flags. Writable data is
        # recognised by name (.data*, .sdata*); every other allocated DATA section is read-only
        # and counts as text, as in llvm-size. Sections of a relocatable object that are not
        # loaded (symbol and string tables, relocations, notes) have no type and are skipped.
        "$OBJDUMP" -h "$1" | awk '
            function hex(s,    i, n) {  # portable: mawk has no strtonum
                n = 0
                for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
                return n
            }
            $1 ~ /^[0-9]+$/ && NF >= 5 {
                size = hex($3); type = $5
                if (type == "TEXT") text += size
                else if (type == "BSS") bss += size
                else if (type == "DATA") {
                    if ($2 ~ /^\.(s?data|data\.rel)/) data += size
                    else text += size
                }
            }
            END { print text + 0, data + 0, bss + 0 }'
    fi
}

start=$(now)
echo "check-embedded: modules: $MODULES"
echo "check-embedded: triples: $TRIPLES"
TABLE="$OUT/sizes.txt"
: > "$TABLE"
status=0
for triple in $TRIPLES; do
    dir="$OUT/$triple"
    mkdir -p "$dir"
    unicode="$EMBEDDED_LIBS/$triple/libswiftUnicodeDataTables.a"
    for module in $MODULES; do
        step=$(now)
        sources=$(ls "$ROOT"/Sources/"$module"/*.swift)
        deps=$(imports_of $sources)
        for d in $deps; do
            [ -f "$dir/$d.o" ] || fail "$module imports $d: list $d before $module in MODULES"
        done
        # shellcheck disable=SC2086
        if ! swiftc -target "$triple" $FLAGS -module-name "$module" -I "$dir" \
                -emit-module -emit-module-path "$dir/$module.swiftmodule" \
                -c $sources -o "$dir/$module.o" > "$dir/$module.log" 2>&1; then
            cat "$dir/$module.log" >&2
            echo "check-embedded: FAILED to compile $module for $triple" >&2
            status=1
            continue
        fi
        # Undefined symbols: allowed libc/compiler-rt names, symbols of imported modules, and
        # the Unicode data tables the toolchain ships per triple (counted as a dependency).
        "$NM" -u -j "$dir/$module.o" | sort -u > "$dir/$module.undefined"
        grep -E "$ALLOWED" "$dir/$module.undefined" > "$dir/$module.runtime" || true
        for d in $deps; do "$NM" --defined-only -j "$dir/$d.o"; done | sort -u > "$dir/$module.provided"
        grep -Ev "$ALLOWED" "$dir/$module.undefined" | comm -23 - "$dir/$module.provided" > "$dir/$module.rest" || true
        if [ -f "$unicode" ]; then
            "$NM" --defined-only -j "$unicode" 2>/dev/null | sort -u > "$dir/unicode-tables"
        else
            : > "$dir/unicode-tables"
        fi
        needs_unicode=no
        [ -s "$(comm -12 "$dir/$module.rest" "$dir/unicode-tables" > "$dir/$module.unicode"; echo "$dir/$module.unicode")" ] &&
            needs_unicode=yes
        bad=$(comm -23 "$dir/$module.rest" "$dir/unicode-tables")
        # The Unicode tables cost about 22 KB of flash and come from comparing or hashing
        # Strings (a `""` pattern, `==`, a String dictionary key): none of the cores needs them.
        if [ "$needs_unicode" = yes ]; then
            echo "check-embedded: FAILED: $module on $triple links the Unicode tables (String comparison or hashing):" >&2
            sed 's/^/    /' "$dir/$module.unicode" >&2
            status=1
        fi
        if [ -n "$bad" ]; then
            echo "check-embedded: FAILED: $module on $triple needs symbols outside the allow-list:" >&2
            echo "$bad" | sed 's/^/    /' >&2
            status=1
        fi
        # The standard library's variadic min/max (3 or more arguments) heap-allocates its rest
        # array on every call in Embedded Swift: nest two-argument calls instead. Any copy of it
        # (a specialisation, `$es3minyxx_xxxdtSLRzlF...`, or a reference) fails the check.
        if "$NM" -j "$dir/$module.o" | grep -E "$VARIADIC_MINMAX" > "$dir/$module.variadic"; then
            echo "check-embedded: FAILED: $module on $triple uses the variadic min/max (nest 2-argument calls):" >&2
            sed 's/^/    /' "$dir/$module.variadic" >&2
            status=1
        fi
        variadic=$(variadic_calls $sources)
        if [ -n "$variadic" ]; then
            echo "check-embedded: FAILED: $module calls min/max with 3 or more arguments (variadic: allocates):" >&2
            echo "$variadic" | sed 's/^/    /' >&2
            status=1
        fi
        runtime=$(tr '\n' ' ' < "$dir/$module.runtime")
        set -- $(sizes_of "$dir/$module.o")
        printf '%-12s %-24s %7s %6s %6s %8s  %-7s %s\n' "$module" "$triple" "$1" "$2" "$3" "$(( $1 + $2 ))" \
            "$needs_unicode" "$(elapsed "$step")" >> "$TABLE"
        echo "$module/$triple: $runtime" >> "$OUT/runtime-symbols.txt"
    done
done

echo
printf '%-12s %-24s %7s %6s %6s %8s  %-7s %s\n' module triple text data bss text+data unicode time
cat "$TABLE"
echo "(object files under $OUT; runtime symbols each needs: $OUT/runtime-symbols.txt)"
[ "$status" -eq 0 ] || fail "embedded compile check failed"

# Host smoke test: the same sources in Embedded mode, linked and run.
step=$(now)
host=x86_64-unknown-linux-gnu
hostdir="$OUT/$host"
mkdir -p "$hostdir"
objects=""
for module in $(closure_of "$SMOKE"); do
    # shellcheck disable=SC2086
    swiftc -target "$host" $FLAGS -module-name "$module" -I "$hostdir" \
        -emit-module -emit-module-path "$hostdir/$module.swiftmodule" \
        -c $(ls "$ROOT"/Sources/"$module"/*.swift) -o "$hostdir/$module.o" || fail "host build of $module failed"
    objects="$objects $hostdir/$module.o"
done
# shellcheck disable=SC2086
swiftc -target "$host" $FLAGS -module-name EmbeddedSmoke -I "$hostdir" "$SMOKE" $objects -o "$hostdir/smoke" ||
    fail "smoke build failed"
"$hostdir/smoke" || fail "smoke test failed (exit $?)"
echo "check-embedded: smoke test passed ($(elapsed "$step"))"

# Allocation count: two Embedded-mode stacks back to back, a 1 MiB echo and preallocated
# close/reopen cycles must allocate nothing (tools/embedded-alloc/main.swift says what is
# checked). counting.c counts posix_memalign/malloc/free through the linker's --wrap.
step=$(now)
objects=""
for module in $(closure_of "$ALLOC"); do
    if [ ! -f "$hostdir/$module.o" ]; then
        # shellcheck disable=SC2086
        swiftc -target "$host" $FLAGS -module-name "$module" -I "$hostdir" \
            -emit-module -emit-module-path "$hostdir/$module.swiftmodule" \
            -c $(ls "$ROOT"/Sources/"$module"/*.swift) -o "$hostdir/$module.o" || fail "host build of $module failed"
    fi
    objects="$objects $hostdir/$module.o"
done
CC_TOOL="$TOOLBIN/clang"
[ -x "$CC_TOOL" ] || CC_TOOL=cc
"$CC_TOOL" -O2 -c "$ROOT/tools/embedded-alloc/counting.c" -o "$hostdir/counting.o" || fail "counting.c failed to compile"
# shellcheck disable=SC2086
swiftc -target "$host" $FLAGS -module-name EmbeddedAlloc -I "$hostdir" "$ALLOC" $objects "$hostdir/counting.o" \
    -Xlinker --wrap=posix_memalign -Xlinker --wrap=malloc -Xlinker --wrap=free -o "$hostdir/alloc" ||
    fail "allocation test build failed"
if "$hostdir/alloc"; then
    echo "check-embedded: PASS: no allocation after a socket opens; none at all on a preallocated stack ($(elapsed "$step"))"
else
    fail "FAIL: allocation test (exit $?): the stack allocated where it must not"
fi

# Stack budget: the deepest armv7em call chain under Stack.receive, Stack.transmit and
# Stack.poll (the echo path a firmware runs) must stay within 2 KiB (tools/stack-frames.sh).
step=$(now)
if BUDGET=2048 "$ROOT/tools/stack-frames.sh" 10 > "$OUT/stack-frames.txt" 2>&1; then
    grep '^deepest chain' "$OUT/stack-frames.txt" | sed 's/^/check-embedded: /'
    echo "check-embedded: PASS: stack frames within budget ($(elapsed "$step"))"
else
    cat "$OUT/stack-frames.txt" >&2
    fail "FAIL: a call chain of GenTCPStack is deeper than its 2 KiB stack budget (tools/stack-frames.sh)"
fi

# Linked sizes: the object sizes above overstate firmware about 3x; the linked ELFs of
# tools/firmware.sh (board support, --gc-sections) are the figures that count. Reported here;
# the budgets are enforced by `tools/firmware.sh size` (CI runs it).
step=$(now)
if command -v arm-none-eabi-gcc >/dev/null 2>&1 && command -v riscv64-unknown-elf-gcc >/dev/null 2>&1; then
    echo
    echo "check-embedded: linked firmware sizes (tools/firmware.sh):"
    "$ROOT/tools/firmware.sh" build slip-echo esp-at-client uart-echo > "$OUT/firmware-build.log" 2>&1 ||
        { cat "$OUT/firmware-build.log" >&2; fail "firmware build failed"; }
    "$ROOT/tools/firmware.sh" size || echo "check-embedded: firmware over its text budget (see above)"
    echo "check-embedded: linked sizes ($(elapsed "$step"))"
else
    echo "check-embedded: linked sizes skipped: the cross toolchains (gcc-arm-none-eabi, gcc-riscv64-unknown-elf) are not installed"
fi
echo "check-embedded: total $(elapsed "$start")"
