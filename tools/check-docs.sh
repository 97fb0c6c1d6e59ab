#!/usr/bin/env bash
# Documentation check.
#
#   tools/check-docs.sh                  check: every public symbol documented, every catalog builds
#   tools/check-docs.sh --preview [MOD]  serve one module's documentation (default GenTCP) locally
#
# 1. Builds the package and dumps the public symbol graphs of the library modules
#    (`swift package dump-symbol-graph`).
# 2. Lists every public or open symbol without a doc comment, enum cases, properties and
#    initializers included, and fails when there is one. Members the compiler writes (a raw-value
#    enum's `init(rawValue:)`, `Equatable`/`Hashable` defaults) are skipped; a member that
#    implements a protocol requirement may rely on the requirement's documentation, which DocC
#    shows for it.
# 3. Converts each module's DocC catalog (`Sources/MOD/MOD.docc`) together with its symbol
#    graphs, with `docc convert --warnings-as-errors`:
#    a broken symbol or article link, a misspelled parameter name or a parameter left out of a
#    `- Parameters:` list fails the check.
#
# Everything generated goes to .build/docs (never committed): one MOD.doccarchive per module.
# Takes 20-45 s on the shared 2-core machine once the package is built.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

MODULES=(GenTCPCore GenTCPWire GenTCPStack GenTCPModem GenTCPBoard GenTCPBoardPrograms GenTCPBoardHost GenTCP GenTCPPOSIX GenTCPSim GenTCPSerial GenTCPSLIP GenTCPAT ModemSimulator GenTCPTLSEngine GenTCPTLS)
OUT=.build/docs

preview=""
if [ "${1:-}" = "--preview" ]; then
  preview="${2:-GenTCP}"
elif [ $# -gt 0 ]; then
  echo "usage: tools/check-docs.sh [--preview MODULE]" >&2
  exit 64
fi

start=$(date +%s)

catalog_of() {
  echo "Sources/$1/$1.docc"
}

echo "== symbol graphs"
rm -rf "$OUT/symbol-graphs"
mkdir -p "$OUT/symbol-graphs"
dump_log="$OUT/dump-symbol-graph.log"
# The tool also tries the test modules and fails on them unless `swift test` built them first;
# only the library modules matter here, and each must have been written by this run.
graphs="$(dirname "$(swift build --show-bin-path)")/symbolgraph"
rm -rf "$graphs"
if ! swift package dump-symbol-graph --minimum-access-level public --skip-synthesized-members \
    >"$dump_log" 2>&1; then
  for module in "${MODULES[@]}"; do
    if grep -q "Failed to emit symbol graph for '$module'" "$dump_log"; then
      grep -v '^[A-Za-z_][A-Za-z0-9_]*$' "$dump_log" | tail -n 30
      echo "check-docs: no symbol graph for $module" >&2
      exit 1
    fi
  done
fi
for module in "${MODULES[@]}"; do
  mkdir -p "$OUT/symbol-graphs/$module"
  if [ ! -f "$graphs/$module.symbols.json" ]; then
    grep -v '^[A-Za-z_][A-Za-z0-9_]*$' "$dump_log" | tail -n 30
    echo "check-docs: no symbol graph for $module" >&2
    exit 1
  fi
  # The module's own graph, plus its extensions of other modules' types (MOD@OTHER).
  cp "$graphs/$module.symbols.json" "$OUT/symbol-graphs/$module/"
  find "$graphs" -maxdepth 1 -name "$module@*.symbols.json" -exec cp {} "$OUT/symbol-graphs/$module/" \;
done

if [ -n "$preview" ]; then
  catalog=$(catalog_of "$preview")
  args=()
  [ -d "$catalog" ] && args+=("$catalog")
  exec docc preview "${args[@]}" --additional-symbol-graph-dir "$OUT/symbol-graphs/$preview" \
    --output-dir "$OUT/preview-$preview.doccarchive" \
    --fallback-display-name "$preview" --fallback-bundle-identifier "org.gentcp.$preview" \
    --fallback-default-module-kind Framework
fi

failed=0
echo "== undocumented public symbols"
python3 - "$OUT/symbol-graphs" "${MODULES[@]}" <<'PY' || failed=1
import glob, json, os, sys

root, modules = sys.argv[1], sys.argv[2:]
missing, total = [], 0
for module in modules:
    for path in sorted(glob.glob(os.path.join(root, module, "*.symbols.json"))):
        with open(path) as f:
            graph = json.load(f)
        for symbol in graph["symbols"]:
            if symbol.get("accessLevel") not in ("public", "open"):
                continue
            if "::SYNTHESIZED::" in symbol["identifier"]["precise"]:
                continue
            location = symbol.get("location")
            if location is None:
                continue  # made by the compiler (a raw-value enum's init(rawValue:), say)
            total += 1
            lines = (symbol.get("docComment") or {}).get("lines", [])
            if any(line.get("text", "").strip() for line in lines):
                continue
            uri = location["uri"].removeprefix("file://")
            file = os.path.relpath(uri) if uri.startswith("/") else uri
            line = location.get("position", {}).get("line", 0) + 1
            name = ".".join(symbol["pathComponents"])
            missing.append((file, line, f"{file}:{line}: {module}.{name} ({symbol['kind']['displayName']})"))
for _, _, entry in sorted(missing):
    print(entry)
print(f"{len(missing)} of {total} public symbols undocumented")
sys.exit(1 if missing else 0)
PY

echo "== docc (warnings are errors)"
for module in "${MODULES[@]}"; do
  catalog=$(catalog_of "$module")
  args=()
  [ -d "$catalog" ] && args+=("$catalog")
  log="$OUT/docc-$module.log"
  if docc convert "${args[@]}" --additional-symbol-graph-dir "$OUT/symbol-graphs/$module" \
      --output-dir "$OUT/$module.doccarchive" \
      --fallback-display-name "$module" --fallback-bundle-identifier "org.gentcp.$module" \
      --fallback-default-module-kind Framework --warnings-as-errors >"$log" 2>&1; then
    echo "$module: ok${args:+ (catalog ${args[0]})}"
  else
    echo "$module: FAILED"
    grep -v '^Finished\|^Generated\|^Documentation' "$log" | head -n 60
    failed=1
  fi
done

echo "== docs checked in $(( $(date +%s) - start )) s; archives in $OUT"
exit $failed
