#!/bin/sh
# Builds and runs one libFuzzer harness.
#
# Usage: tools/fuzz.sh NAME SECONDS [libFuzzer options...]
#
# Convention, the same for every harness (the script knows nothing else about them):
#   tools/fuzz/NAME/main.swift   the harness: a top-level
#                                @_cdecl("LLVMFuzzerTestOneInput") func(UnsafePointer<UInt8>, Int) -> CInt
#                                that imports the modules it tests like any client would
#   tools/fuzz/NAME/modules      the package modules it needs, one per line, dependencies first
#                                (blank lines and lines starting with # are ignored)
#   tools/fuzz/NAME/corpus/      committed seed inputs (read, never written)
#   tools/fuzz/NAME/dict         optional libFuzzer dictionary
#   tools/fuzz/NAME/flags        optional extra swiftc flags for the modules and the harness
#                                (# comments; @ROOT@ is the repository), e.g. a system library's
#                                module map and -l options
#
# Each module is compiled from Sources/<Module>/*.swift with plain swiftc (never SwiftPM, so the
# sanitizer flags stay out of .build/debug) as its own module with -sanitize=fuzzer,address, then
# linked with the harness into .build/fuzz/NAME/fuzzer. It is rebuilt only when a source changed.
# New inputs go to .build/fuzz/NAME/corpus/, crash reproducers to .build/fuzz/NAME/artifacts/.
# Reproduce a crash with: .build/fuzz/NAME/fuzzer .build/fuzz/NAME/artifacts/crash-<sha>
#
# Exit: 0 when the run ended clean; libFuzzer's non-zero status when it found a crash, a leak,
# a timeout or ran out of memory; 2 for usage or build errors.
set -eu

usage() { echo "usage: tools/fuzz.sh NAME SECONDS [libFuzzer options...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
NAME=$1
DURATION=$2
shift 2
case "$DURATION" in '' | *[!0-9]*) usage ;; esac

cd "$(dirname "$0")/.."
ROOT=$(pwd)
HARNESS="$ROOT/tools/fuzz/$NAME"
OUT="$ROOT/.build/fuzz/$NAME"
[ -f "$HARNESS/main.swift" ] || { echo "fuzz: no harness at tools/fuzz/$NAME/main.swift" >&2; exit 2; }
[ -f "$HARNESS/modules" ] || { echo "fuzz: no module list at tools/fuzz/$NAME/modules" >&2; exit 2; }
MODULES=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HARNESS/modules" | grep -v '^$' || true)
FLAGS="-swift-version 6 -warnings-as-errors -sanitize=fuzzer,address -parse-as-library -g -O -wmo"
if [ -f "$HARNESS/flags" ]; then
    FLAGS="$FLAGS $(sed -e 's/#.*//' -e "s|@ROOT@|$ROOT|g" "$HARNESS/flags" | tr '\n' ' ')"
fi
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
mkdir -p "$OUT/modules" "$OUT/corpus" "$OUT/artifacts"

# Rebuild when any input is newer than the binary (or the module list changed).
start=$(now)
stale=yes
if [ -x "$OUT/fuzzer" ]; then
    stale=no
    for m in $MODULES; do
        [ -z "$(find "$ROOT/Sources/$m" -name '*.swift' -newer "$OUT/fuzzer")" ] || stale=yes
    done
    [ -z "$(find "$HARNESS/main.swift" "$HARNESS/modules" "$0" -newer "$OUT/fuzzer")" ] || stale=yes
    [ ! -f "$HARNESS/flags" ] || [ -z "$(find "$HARNESS/flags" -newer "$OUT/fuzzer")" ] || stale=yes
fi
if [ "$stale" = yes ]; then
    objects=""
    for m in $MODULES; do
        [ -d "$ROOT/Sources/$m" ] || { echo "fuzz: no module Sources/$m (listed in tools/fuzz/$NAME/modules)" >&2; exit 2; }
        # shellcheck disable=SC2086
        swiftc $FLAGS -module-name "$m" -I "$OUT/modules" -emit-module -emit-module-path "$OUT/modules/$m.swiftmodule" \
            -c $(ls "$ROOT"/Sources/"$m"/*.swift) -o "$OUT/modules/$m.o" > "$OUT/build.log" 2>&1 ||
            { cat "$OUT/build.log" >&2; echo "fuzz: building $m failed" >&2; exit 2; }
        objects="$objects $OUT/modules/$m.o"
    done
    # The linker warns about every ASan-instrumented local symbol ("Cannot export local symbol"):
    # harmless noise, kept in build.log.
    # shellcheck disable=SC2086
    swiftc $FLAGS -module-name Harness -I "$OUT/modules" "$HARNESS/main.swift" $objects -o "$OUT/fuzzer" \
        > "$OUT/build.log" 2>&1 || { grep -v 'Cannot export local symbol' "$OUT/build.log" >&2; echo "fuzz: building the harness failed" >&2; exit 2; }
    echo "fuzz: built $NAME ($MODULES) in $(elapsed "$start")"
fi

dict=""
[ -f "$HARNESS/dict" ] && dict="-dict=$HARNESS/dict"
seeds="$HARNESS/corpus"
[ -d "$seeds" ] || seeds=""
echo "fuzz: running $NAME for ${DURATION}s (log: $OUT/run.log)"
run=$(now)
marker="$OUT/.run-start"
: > "$marker"
set +e
# SWIFT_BACKTRACE=enable=no: the Swift runtime's crash backtracer and ASan trip over each other
# (the backtracer's memory reads are reported as an ASan error, hiding the real failure); with it
# off, libFuzzer's deadly-signal handler prints the stack.
# shellcheck disable=SC2086
SWIFT_BACKTRACE=enable=no "$OUT/fuzzer" -max_total_time="$DURATION" -print_final_stats=1 -artifact_prefix="$OUT/artifacts/" $dict "$@" \
    "$OUT/corpus" $seeds > "$OUT/run.log" 2>&1
status=$?
set -e

stat() { sed -n "s/^stat::$1:[[:space:]]*//p" "$OUT/run.log" | tail -1; }
coverage=$(grep -E '^#[0-9]+' "$OUT/run.log" | tail -1 | sed -n 's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2 \3/p')
echo "fuzz: $NAME: $(stat number_of_executed_units) runs in $(elapsed "$run"), $(stat average_exec_per_sec) exec/s," \
    "$(stat new_units_added) new units, $coverage, peak RSS $(stat peak_rss_mb) MB"
if [ "$status" -ne 0 ]; then
    echo "fuzz: $NAME FAILED (libFuzzer exit $status). From the log:" >&2
    grep -v 'Cannot export local symbol' "$OUT/run.log" |
        awk '/Fatal error|runtime failure|==ERROR|deadly signal|ERROR: libFuzzer/ { on = 1 } on && n++ < 30' >&2
    find "$OUT/artifacts" -type f -newer "$marker" | sed 's/^/fuzz: reproducer: /' >&2
fi
exit "$status"
