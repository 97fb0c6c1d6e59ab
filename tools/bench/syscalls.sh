#!/usr/bin/env bash
# Counts system calls, context switches and page faults per unit of work for each case of
# gentcp-bench, GenTCP and raw side by side, with `perf stat` (tracepoints; works with
# kernel.perf_event_paranoid <= 2 on this machine). Counts do not depend on machine load the way
# timings do, so they show where GenTCP does more work than raw.
#
#   tools/bench/syscalls.sh [BYTES] [ROUND_TRIPS] [CASES...]
#
# Units: one 64 KiB of bulk data, one ping-pong round trip. Counts include the bench's untimed
# warm-up run (accounted for in the units) and both ends of the connection.
set -euo pipefail
cd "$(dirname "$0")/../.."
bytes=${1:-256M}
trips=${2:-50000}
shift 2 2>/dev/null || true
bench=.build/release/gentcp-bench
[ -x "$bench" ] || swift build -c release --product gentcp-bench >/dev/null
command -v perf >/dev/null || { echo "perf is not installed"; exit 1; }
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(bulk-passive-64k bulk-active-64k bulk-passive-1460 bulk-active-1460 bulk-both-64k pingpong-passive pingpong-once)

to_bytes() {
  local v=$1 m=1
  case $v in *k|*K) m=1024; v=${v%?};; *m|*M) m=$((1<<20)); v=${v%?};; *g|*G) m=$((1<<30)); v=${v%?};; esac
  echo $((v * m))
}
b=$(to_bytes "$bytes")
warm_b=$(( b < 8388608 ? b : 8388608 ))
warm_t=$(( trips < 2000 ? trips : 2000 ))
events=task-clock,context-switches,page-faults
for s in read sendto sendmsg epoll_wait epoll_ctl futex madvise; do events+=",syscalls:sys_enter_$s"; done

printf '%-20s %-6s %9s %7s %7s %7s %7s %7s %8s %8s %7s %7s\n' case side "cpu ms" csw faults read send sendmsg epoll_wt epoll_ctl futex madvise
for c in "${cases[@]}"; do
  case $c in
    bulk*) units=$(( (b + warm_b) / 65536 ));;
    *) units=$(( trips + warm_t ));;
  esac
  for side in raw gentcp; do
    perf stat -x, -e "$events" "$bench" --only "$c" --repeat 1 --bytes "$bytes" --round-trips "$trips" --side "$side" \
      2>/tmp/gentcp-syscalls.$$ >/dev/null
    awk -F, -v c="$c" -v side="$side" -v u="$units" '
      { v[$3] = $1 }
      END {
        printf "%-20s %-6s %9.0f", c, side, v["task-clock"]
        n = split("context-switches page-faults syscalls:sys_enter_read syscalls:sys_enter_sendto syscalls:sys_enter_sendmsg syscalls:sys_enter_epoll_wait syscalls:sys_enter_epoll_ctl syscalls:sys_enter_futex syscalls:sys_enter_madvise", k, " ")
        w[1]=7; w[2]=7; w[3]=7; w[4]=7; w[5]=7; w[6]=8; w[7]=8; w[8]=7; w[9]=7
        for (i = 1; i <= n; i++) printf " %*.2f", w[i], v[k[i]] / u
        printf "\n"
      }' /tmp/gentcp-syscalls.$$
  done
done
rm -f /tmp/gentcp-syscalls.$$
echo "(per unit: 64 KiB of bulk data or one round trip; 'cpu ms' is the whole run's task-clock)"
