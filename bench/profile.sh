#!/usr/bin/env bash
# Where sluice spends its time on one bench scenario: starts the static upstream and sluice (one
# thread, CPU 0) with bench/conf/, loads them with wrk (CPU 1) and reports per request.
#
#   bench/profile.sh [--tool callgrind|strace|perf] [--target sluice|nginx|haproxy]
#                    [--path /limited/x] [--secs 10] [--store memory|redis] [--sluice build/sluice]
#                    [--close] [--keep DIR]
#
#   callgrind  instructions per request and the functions that execute them (valgrind; counts are
#              repeatable whatever else the machine does; build with -g for file:line)
#   strace     system calls per request, by kind (strace -c)
#   perf       a cpu-clock sample profile with call graphs (perf record; works where hardware
#              counters are not available)
# --path /tight/x profiles the rejected flood instead of allowed traffic. --target nginx or haproxy
# measures a peer the same way (nginx as one process: master_process off), for comparison.
# --store redis runs sluice on the Redis store, with a redis-server of its own (CPU 0).
# --close sends `Connection: close`: a TCP connection per request (bench/run.sh's `close`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
tool=callgrind target=sluice path=/limited/x secs=10 store=memory sluice="$repo/build/sluice" keep="" close=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --tool) tool=$2; shift 2;;
    --target) target=$2; shift 2;;
    --store) store=$2; shift 2;;
    --path) path=$2; shift 2;;
    --secs) secs=$2; shift 2;;
    --sluice) sluice=$2; shift 2;;
    --keep) keep=$2; shift 2;;
    --close) close=(-H "Connection: close"); shift;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2;;
  esac
done
case $tool in
  callgrind) needs=(valgrind callgrind_annotate callgrind_control);;
  strace) needs=(strace);;
  perf) needs=(perf);;
  *) echo "--tool is callgrind, strace or perf" >&2; exit 2;;
esac
[[ $store == memory || $store == redis ]] || { echo "--store is memory or redis" >&2; exit 2; }
[[ $store == memory ]] || needs+=(redis-server)
case $target in
  sluice|nginx) ;;
  haproxy) needs+=(haproxy);;
  *) echo "--target is sluice, nginx or haproxy" >&2; exit 2;;
esac
for t in nginx wrk taskset ss "${needs[@]}"; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install nginx-light wrk valgrind strace linux-perf)" >&2; exit 2; }
done
if [[ $target == sluice && ! -x $sluice ]]; then echo "no sluice binary at $sluice (pass --sluice PATH)" >&2; exit 2; fi

run=$(mktemp -d /tmp/sluice-profile.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $keep ]]; then mkdir -p "$keep" && cp -r "$run"/. "$keep"/; fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768-)
    ss -Htan "sport = :$port" | grep -q . || { echo "$port"; return; }
  done
}
wait_listening() {
  for _ in $(seq 100); do
    ss -Htln "sport = :$1" | grep -q . && return 0
    sleep 0.1
  done
  echo "nothing listens on $1; logs in $run" >&2
  cat "$run"/*.log >&2
  exit 1
}
up_port=$(free_port)
port=$(free_port)
while [[ $port == "$up_port" ]]; do port=$(free_port); done
sed -e "s#@RUN@#$run#g" -e "s#@UP_PORT@#$up_port#g" "$here/conf/upstream.conf" >"$run/upstream.conf"
taskset -c 0 nginx -p "$run" -e "$run/upstream-error.log" -c "$run/upstream.conf" >"$run/upstream.log" 2>&1 &
pids+=($!)
wait_listening "$up_port"

prefix=()
if [[ $tool == callgrind ]]; then
  prefix=(valgrind --tool=callgrind "--callgrind-out-file=$run/callgrind.out")
fi
case $target in
  sluice)
    store_yaml="{ type: memory, max_keys: 1000000 }"
    if [[ $store == redis ]]; then
      redis_port=$(free_port)
      while [[ $redis_port == "$port" || $redis_port == "$up_port" ]]; do redis_port=$(free_port); done
      taskset -c 0 redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
        --dir "$run" >"$run/redis.log" 2>&1 &
      pids+=($!)
      wait_listening "$redis_port"
      store_yaml="{ type: redis, redis: { url: \"redis://127.0.0.1:$redis_port/0\" } }"
    fi
    sed -e "s#@PORT@#$port#" -e "s#@THREADS@#1#" -e "s#@UP_PORT@#$up_port#" \
      -e "s#@STORE@#$store_yaml#" "$here/conf/sluice.yaml" >"$run/sluice.yaml"
    command=("$sluice" --config "$run/sluice.yaml" --log-level warn);;
  nginx)
    { echo "master_process off;"; sed -e "s#@RUN@#$run#g" -e "s#@PORT@#$port#" \
      -e "s#@UP_PORT@#$up_port#" "$here/conf/nginx-limit-req.conf"; } >"$run/nginx.conf"
    command=(nginx -p "$run" -e "$run/nginx-error.log" -c "$run/nginx.conf");;
  haproxy)
    sed -e "s#@PORT@#$port#" -e "s#@UP_PORT@#$up_port#" "$here/conf/haproxy.cfg" >"$run/haproxy.cfg"
    command=(haproxy -db -f "$run/haproxy.cfg");;
esac
taskset -c 0 "${prefix[@]}" "${command[@]}" >"$run/$target.log" 2>&1 &
target_pid=$!
pids+=("$target_pid")
wait_listening "$port"

printf 'wrk.headers["X-API-Key"] = "k1"\n' >"$run/onekey.lua"
load() {  # load SECONDS CONNECTIONS -> number of requests completed
  taskset -c 1 wrk -t1 -c"$2" -d"$1s" "${close[@]}" -s "$run/onekey.lua" "http://127.0.0.1:$port$path" |
    tee -a "$run/wrk.out" | awk '/requests in/ {print $1}'
}
load 2 10 >/dev/null  # warm-up: connections open, pool filled, key created

case $tool in
  callgrind)
    callgrind_control -z "$target_pid" >/dev/null 2>&1
    requests=$(load "$secs" 10)
    callgrind_control -d "$target_pid" >/dev/null 2>&1
    sleep 1
    out=$(find "$run" -name "callgrind.out.*" | sort | tail -1)
    total=$(callgrind_annotate --auto=no "$out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "$target: $requests requests to $path under callgrind: $((total / requests)) instructions per request"
    allocations=$(callgrind_annotate --tree=caller --threshold=100 "$out" |
      awk '/^$/ {calls = 0}
           /^ *[0-9,]+ \( *[0-9.]+%\)  < / && match($0, /\([0-9,]+x\)/) {
             v = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", v); calls += v }
           /^ *[0-9,]+ \( *[0-9.]+%\)  \* .*:malloc \[/ && !done {found = calls; done = 1}
           END {print found + 0}')
    echo "malloc calls per request: $(awk -v a="$allocations" -v n="$requests" 'BEGIN {printf "%.1f", a / n}')"
    callgrind_annotate --auto=no --threshold=100 "$out" | awk '/^ *[0-9,]+ \(/ && !/100\.0%/' \
      >"$run/self.txt"
    [[ $target == sluice ]] && echo "by area (instructions per request, self cost of the functions in it):"
    [[ $target == sluice ]] && awk -v n="$requests" -v repo="$repo/" '
      function area(line) {
        if (line ~ /buffers_cat|buffers_prefix|buffers_suffix|mp_with_index|detail\/variant|buffers_ref|list_iterator|asio\/buffer\.hpp/) return "Beast buffer sequences (serializer, writes)"
        if (line ~ /http\/impl\/fields|http\/fields\.hpp|detail\/string\.hpp|iless|intrusive|field\.ipp/) return "Beast header fields (lookups, inserts)"
        if (line ~ /basic_parser|rfc7230|http\/parser\.hpp/) return "Beast parser"
        if (line ~ /any_executor|any_io_executor|io_context\.hpp|handler_work|prefer\.hpp|work_guard/) return "Asio executor type erasure"
        if (line ~ /malloc\.c|operator new|operator delete/) return "malloc/free"
        if (line ~ /pthread_mutex/) return "mutex lock/unlock"
        return "other (Asio reactor and handlers, libc, ...)"
      }
      {
        c = $1; gsub(",", "", c)
        entry = $0; sub(/^ *[0-9,]+ \( *[0-9.]+%\)  /, "", entry)
        file = entry; sub(/:.*/, "", file)
        fn_name = substr(entry, length(file) + 2)
        # sluice functions, with the library code the compiler inlined into them
        if (index(file, repo) == 1 || fn_name ~ /^sluice::/) sum["sluice code (classify, limit, proxy)"] += c
        else sum[area(file " " fn_name)] += c
      }
      END { for (a in sum) printf "  %8d  %s\n", sum[a] / n, a }' "$run/self.txt" | sort -rn
    echo "functions by instructions executed in them (self):"
    head -30 "$run/self.txt" | cut -c1-220
    echo "(full data: callgrind_annotate --inclusive=yes $out; keep it with --keep DIR)";;
  strace)
    strace -c -f -p "$target_pid" -o "$run/strace.out" 2>"$run/strace.log" &
    tracer=$!
    sleep 0.5
    requests=$(load "$secs" 50)
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    echo "$target: $requests requests to $path; system calls per request:"
    awk -v n="$requests" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" && $4 / n >= 0.01 {
        errors = NF == 6 ? $5 : 0
        printf "  %-16s %6.2f  (failed %.2f)\n", $NF, $4 / n, errors / n }
      $NF == "total" {printf "  %-16s %6.2f\n", "total", $4 / n}' "$run/strace.out";;
  perf)
    load "$((secs + 2))" 50 >/dev/null &
    loader=$!
    sleep 1
    perf record -e cpu-clock -F 2000 --call-graph dwarf,16384 -p "$target_pid" -o "$run/perf.data" \
      -- sleep "$secs" 2>/dev/null
    wait "$loader" || true
    perf report -i "$run/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -40 | cut -c1-200
    echo "(full data: perf report -i $run/perf.data; keep it with --keep DIR)";;
esac
