#!/bin/sh
# Stack frames of GenTCPStack as firmware: builds GenTCPCore, GenTCPWire and GenTCPStack for a
# microcontroller triple the way tools/check-embedded.sh does (Embedded, -wmo -Osize, plus
# -function-sections as a firmware build uses), reads every function's prologue with the
# toolchain's llvm-objdump (push/vpush registers + `sub sp`), and prints:
#
#   1. the largest frames (bytes, function);
#   2. the deepest call chain under each of the echo path's entry points, Stack.receive (a segment
#      arrives: receiveTCP, Connection.process...), Stack.transmit (emit, emitData...) and
#      Stack.poll (timers), and under Connection.process alone,
#      following the calls inside these three modules (calls through relocations: with
#      -function-sections every call between functions is one). Frames of libc/runtime
#      functions are not counted; recursion, if any, is cut at the first repeat.
#
# The driver calls receive, transmit and poll one after the other, so the stack a firmware needs
# for the stack is the deepest of these chains (plus its own frames above them).
#
# Usage: tools/stack-frames.sh [count]   (count: how many of the largest frames, default 25)
# Env:   TRIPLE (default armv7em-none-none-eabi; the frame reader knows Thumb-2 only)
#        BUDGET: fail (exit 1) when a chain is deeper than this many bytes (default 2048).
set -eu

COUNT=${1:-25}
TRIPLE=${TRIPLE:-armv7em-none-none-eabi}
BUDGET=${BUDGET:-2048}
MODULES="GenTCPCore GenTCPWire GenTCPStack"

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/.build/stack-frames/$TRIPLE"
SWIFTC=$(command -v swiftc)
TOOLBIN=$(dirname "$(readlink -f "$SWIFTC")")
OBJDUMP="$TOOLBIN/llvm-objdump"
DEMANGLE="$TOOLBIN/swift-demangle"
FLAGS="-swift-version 6 -enable-experimental-feature Embedded -wmo -parse-as-library -Osize
    -Xfrontend -function-sections -Xcc -ffreestanding -Xcc -fno-pic"

rm -rf "$OUT"
mkdir -p "$OUT"
for module in $MODULES; do
    # shellcheck disable=SC2086
    swiftc -target "$TRIPLE" $FLAGS -module-name "$module" -I "$OUT" \
        -emit-module -emit-module-path "$OUT/$module.swiftmodule" \
        -c "$ROOT"/Sources/"$module"/*.swift -o "$OUT/$module.o"
    # The outliner's functions are local and numbered per object (every module has an
    # OUTLINED_FUNCTION_36): name them after their module, or chains would cross objects.
    "$OBJDUMP" -d -r --no-show-raw-insn "$OUT/$module.o" |
        sed "s/\(OUTLINED_FUNCTION_[0-9]*\)/\1.$module/g" >> "$OUT/all.dis"
done

python3 - "$OUT/all.dis" "$DEMANGLE" "$COUNT" "$BUDGET" <<'EOF'
import re, subprocess, sys

dis, demangle, count, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
frames, calls, current, prologue = {}, {}, None, 0
regs = {}  # register -> constant loaded by movw/mov (for `sub sp, rN`)
for line in open(dis):
    m = re.match(r'^[0-9a-f]+ <(.+)>:$', line)
    if m:
        current = m.group(1)
        frames.setdefault(current, 0)
        calls.setdefault(current, set())
        prologue, regs = 0, {}
        continue
    if current is None:
        continue
    r = re.search(r'R_ARM_THM_(?:CALL|JUMP24)\s+(\S+)', line)
    if r:
        calls[current].add(r.group(1))
        continue
    i = re.match(r'^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$', line)
    if not i:
        continue
    prologue += 1
    if prologue > 24:  # frames are set up in the first instructions
        continue
    op, args = i.group(1), i.group(2)
    if op in ('push', 'push.w', 'vpush', 'stmdb'):
        n = args.split('{', 1)[-1].split('}', 1)[0].count(',') + 1
        frames[current] += n * (8 if op == 'vpush' and 'd' in args else 4)
    elif op in ('sub', 'sub.w', 'subw') and args.startswith('sp'):
        k = re.search(r'#(0x[0-9a-f]+|\d+)', args)
        if k:
            frames[current] += int(k.group(1), 0)
        else:
            reg = args.split(',')[-1].strip()
            frames[current] += regs.get(reg, 0)
    elif op in ('movw', 'mov.w', 'movs', 'mov'):
        parts = [p.strip() for p in args.split(',')]
        k = re.match(r'#(0x[0-9a-f]+|\d+)', parts[-1]) if len(parts) == 2 else None
        if k:
            regs[parts[0]] = int(k.group(1), 0)

names = list(frames)
out = subprocess.run([demangle, '--simplified'], input='\n'.join(names), capture_output=True, text=True).stdout.split('\n')
pretty = dict(zip(names, out))

def short(sym):
    return pretty.get(sym, sym)[:150]

print('largest frames (bytes, function):')
for sym in sorted(frames, key=lambda s: -frames[s])[:count]:
    print('%6d  %s' % (frames[sym], short(sym)))

memo = {}
def deepest(sym, stack=()):
    if sym not in frames or sym in stack:
        return 0, []
    if sym in memo:
        return memo[sym]
    best, chain = 0, []
    for callee in calls.get(sym, ()):
        d, c = deepest(callee, stack + (sym,))
        if d > best:
            best, chain = d, c
    memo[sym] = (frames[sym] + best, [sym] + chain)
    return memo[sym]

status = 0
print()
roots = (('Stack.receive', r'GenTCPStack5StackV7receive_3now'),
         ('Stack.transmit', r'GenTCPStack5StackV8transmit4into3now'),
         ('Stack.poll', r'GenTCPStack5StackV4poll3now'),
         ('Stack.init (once, at boot)', r'GenTCPStack5StackV13configurationAcA0C13ConfigurationV_tcfC'),
         ('Connection.process (part of Stack.receive)', r'GenTCPStack10ConnectionV7process_'))
for label, pattern in roots:
    roots = [s for s in frames if re.search(pattern, s)]
    for root in roots:
        depth, chain = deepest(root)
        print('deepest chain under %s: %d bytes (budget %d)' % (label, depth, budget))
        for sym in chain:
            print('%6d  %s' % (frames[sym], short(sym)))
        if depth > budget:
            status = 1
    if not roots:
        print('no %s found' % label)
        status = 1
sys.exit(status)
EOF
