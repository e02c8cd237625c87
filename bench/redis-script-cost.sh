#!/usr/bin/env bash
# What the Redis store's script costs Redis, per request, in instructions: redis-server runs under
# callgrind while sluice_bench_redis_script sends it batches through RedisStore::decide. Two runs
# (N and 3N batches) are subtracted, so Redis' start-up, the script's loading and the connection
# cancel out and what is left is the cost of 2N batches. Instruction counts do not depend on what
# else the machine runs, so two versions of the script can be compared to a percent or better.
#
#   bench/redis-script-cost.sh [--batches N] [--batch 17] [--scenario allowed|rejected|keys|all]
#                              [--tool build/bench/sluice_bench_redis_script]
#
# Needs valgrind and redis-server. docs/performance.md has the figures and what they mean.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
batches=20 batch=17 scenario=all tool="$repo/build/bench/sluice_bench_redis_script"
while [[ $# -gt 0 ]]; do
  case $1 in
    --batches) batches=$2; shift 2;;
    --batch) batch=$2; shift 2;;
    --scenario) scenario=$2; shift 2;;
    --tool) tool=$2; shift 2;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2;;
  esac
done
for t in valgrind callgrind_annotate redis-server redis-cli; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install valgrind redis-server)" >&2; exit 2; }
done
[[ -x $tool ]] || { echo "no $tool (cmake --build build --target sluice_bench_redis_script)" >&2; exit 2; }
case $scenario in
  all) scenarios=(allowed rejected keys);;
  allowed|rejected|keys) scenarios=("$scenario");;
  *) echo "--scenario is allowed, rejected, keys or all" >&2; exit 2;;
esac

run=$(mktemp -d /tmp/sluice-script-cost.XXXXXX)
redis_pid=""
cleanup() {
  if [[ -n $redis_pid ]]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$run"
}
trap cleanup EXIT

# A free port below the ephemeral range.
free_port() {
  local port
  for port in $(shuf -i 20000-29999 -n 50); do
    if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "no free port" >&2; exit 1
}

# instructions SCENARIO BATCHES: everything redis-server executed from start to SHUTDOWN.
instructions() {
  local port out
  port=$(free_port)
  out="$run/callgrind.$1.$2"
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    >"$run/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$tool" --port "$port" --batches "$2" --batch "$batch" --scenario "$1" >"$run/tool.log" ||
    { cat "$run/tool.log" >&2; exit 1; }
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=""
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

echo "Redis instructions per request, batches of $batch ($((2 * batches)) batches counted)"
for s in "${scenarios[@]}"; do
  few=$(instructions "$s" "$batches")
  many=$(instructions "$s" $((3 * batches)))
  per_batch=$(((many - few) / (2 * batches)))
  printf '  %-9s %8d per request  (%d per script call)\n' "$s" $((per_batch / batch)) "$per_batch"
done
