#!/usr/bin/env bash
# sluice against nginx limit_req and HAProxy on loopback, with the same policies (bench/conf/), in
# interleaved rounds; prints medians and sluice/peer ratios. docs/performance.md explains it all.
#
#   bench/run.sh [--rounds 3] [--secs 3] [--conns 50] [--only SCENARIO[,SCENARIO...]]
#                [--sluice build/sluice] [--store-bench build/bench/sluice_bench_store] [--keep DIR]
#                [--redis-cpu 0] [--sleepy-cpus]
#
# Scenarios (all by default; a full run at the defaults takes about 8 minutes):
#   allowed    /limited/ (never rejects), one API key          direct upstream, nginx, haproxy, sluice
#   keys       /limited/, 100 000 API keys (wrk Lua script)    same targets
#   rejected   /tight/ (10/s, burst 5), one key: a 429 flood   nginx, haproxy, sluice
#   close      /limited/ with "Connection: close" (no keep-alive)
#   redis      sluice on the Redis store against the memory store (allowed and rejected), Redis
#              script calls (EVALSHA + EVAL) and Redis CPU time per request; skipped with a message
#              if `sluice check` rejects the store
#   threads    sluice threads: 2 against threads: 1, everything sharing both CPUs (see the doc)
#   isolation  a paced client's p99 and rps alone, then while one key floods /tight/ (runs of at
#              least 10 s, whatever --secs says); alone, both CPUs are kept awake by idle-priority
#              spinners (--sleepy-cpus leaves them to halt when idle; see the doc)
#   memory     idle RSS of sluice, and bytes per key at 1 000 000 keys (sluice_bench_store)
#
# Servers are pinned to CPU 0 and wrk to CPU 1 (taskset), one worker/thread each; redis-server too
# (--redis-cpu 1 moves it next to wrk instead). Everything listens on 127.0.0.1 on free ports;
# everything started is stopped on exit. --keep DIR keeps configs, logs and raw results.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

rounds=3 secs=3 conns=50 only="" sluice="$repo/build/sluice" store_bench="" keep="" redis_cpu=0
keep_awake=true
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) rounds=$2; shift 2;;
    --secs) secs=$2; shift 2;;
    --conns) conns=$2; shift 2;;
    --only) only=$2; shift 2;;
    --sluice) sluice=$2; shift 2;;
    --store-bench) store_bench=$2; shift 2;;
    --keep) keep=$2; shift 2;;
    --redis-cpu) redis_cpu=$2; shift 2;;
    --sleepy-cpus) keep_awake=false; shift;;
    -h|--help) usage; exit 0;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2;;
  esac
done
for n in "$rounds" "$secs" "$conns"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "--rounds, --secs and --conns take whole numbers > 0" >&2; exit 2; }
done
all_scenarios=(allowed keys rejected close redis threads isolation memory)
scenarios=("${all_scenarios[@]}")
if [[ -n $only ]]; then
  IFS=, read -r -a scenarios <<<"$only"
  for s in "${scenarios[@]}"; do
    [[ " ${all_scenarios[*]} " == *" $s "* ]] || { echo "unknown scenario '$s' (one of: ${all_scenarios[*]})" >&2; exit 2; }
  done
fi
wants() { [[ " ${scenarios[*]} " == *" $1 "* ]]; }

missing=()
for tool in nginx haproxy wrk taskset curl ss; do command -v $tool >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  echo "missing: ${missing[*]} — install with: apt-get install nginx-light haproxy wrk util-linux curl iproute2" >&2
  exit 2
fi
[[ -x $sluice ]] || { echo "no sluice binary at $sluice: build it (make build) or pass --sluice PATH" >&2; exit 2; }
store_bench=${store_bench:-$(dirname "$sluice")/bench/sluice_bench_store}
if (($(nproc) < 2)); then echo "needs 2 CPUs: servers run on CPU 0, wrk on CPU 1" >&2; exit 2; fi
server_cpus=0 client_cpus=1

run=$(mktemp -d /tmp/sluice-bench.XXXXXX)
pids=() flood_pid="" spinner_pids=()
cleanup() {
  local p
  if [[ -n $flood_pid ]]; then kill "$flood_pid" 2>/dev/null || true; fi
  for p in "${spinner_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then alive=1; fi; done
    ((alive)) || break
    sleep 0.2
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $keep ]]; then mkdir -p "$keep" && cp -r "$run"/. "$keep"/; fi
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A pid_of port_of
taken=" "
claim_port() {  # claim_port NAME: a free port for NAME in port_of, never one already claimed
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))  # below the ephemeral range (32768-)
    if [[ $taken == *" $port "* ]]; then continue; fi
    if ss -Htan "sport = :$port" | grep -q .; then continue; fi
    taken+="$port "
    port_of[$1]=$port
    return
  done
}

# render TEMPLATE OUT KEY=VALUE... : replaces each @KEY@
render() {
  local template=$1 out=$2 expr=() kv
  shift 2
  for kv in "$@"; do expr+=(-e "s#@${kv%%=*}@#${kv#*=}#g"); done
  sed "${expr[@]}" "$template" >"$out"
}

# start NAME CPUS COMMAND... : in the background, pinned, output to $run/NAME.log
start() {
  local name=$1 cpus=$2
  shift 2
  taskset -c "$cpus" "$@" >"$run/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
}
wait_listening() {
  local name=$1 port=$2
  for _ in $(seq 50); do
    ss -Htln "sport = :$port" | grep -q . && return 0
    kill -0 "${pid_of[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start listening on 127.0.0.1:$port; its output:" >&2
  cat "$run/$name.log" >&2
  exit 1
}
# Re-pins a process, all its threads and its children (nginx workers).
pin() {
  local cpus=$1 pid=$2 child
  taskset -acp "$cpus" "$pid" >/dev/null
  for child in $(pgrep -P "$pid" || true); do taskset -acp "$cpus" "$child" >/dev/null; done
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# --- the servers ---------------------------------------------------------------------------------
claim_port direct
render "$here/conf/upstream.conf" "$run/upstream.conf" RUN="$run" UP_PORT="${port_of[direct]}"
start direct "$server_cpus" nginx -p "$run" -e "$run/upstream-error.log" -c "$run/upstream.conf"
wait_listening direct "${port_of[direct]}"

claim_port nginx
render "$here/conf/nginx-limit-req.conf" "$run/nginx.conf" RUN="$run" PORT="${port_of[nginx]}" \
  UP_PORT="${port_of[direct]}"
start nginx "$server_cpus" nginx -p "$run" -e "$run/nginx-error.log" -c "$run/nginx.conf"

claim_port haproxy
render "$here/conf/haproxy.cfg" "$run/haproxy.cfg" PORT="${port_of[haproxy]}" UP_PORT="${port_of[direct]}"
start haproxy "$server_cpus" haproxy -db -f "$run/haproxy.cfg"

memory_store="{ type: memory, max_keys: 1000000 }"
# sluice_config NAME THREADS STORE
sluice_config() {
  claim_port "$1"
  render "$here/conf/sluice.yaml" "$run/$1.yaml" PORT="${port_of[$1]}" THREADS="$2" STORE="$3" \
    UP_PORT="${port_of[direct]}"
}
sluice_config sluice 1 "$memory_store"
start sluice "$server_cpus" "$sluice" --config "$run/sluice.yaml" --log-level warn
wait_listening sluice "${port_of[sluice]}"
sleep 0.3
idle_rss_1=$(rss_kib "${pid_of[sluice]}")

idle_rss_2=""
if wants threads || wants memory; then
  sluice_config sluice_t2 2 "$memory_store"
  start sluice_t2 "$server_cpus" "$sluice" --config "$run/sluice_t2.yaml" --log-level warn
  wait_listening sluice_t2 "${port_of[sluice_t2]}"
  sleep 0.3
  idle_rss_2=$(rss_kib "${pid_of[sluice_t2]}")
fi

redis_note="" redis_port=""
redis_commands() {  # "COMMAND CALLS" per command Redis has run (those run by scripts included)
  redis-cli -p "$redis_port" info commandstats |
    awk -F'[:=,]' '/^cmdstat_/ && $1 != "cmdstat_info" {sub(/^cmdstat_/, "", $1); print $1, $3}'
}
redis_calls() { redis_commands | awk '{n += $2} END {print n + 0}'; }
redis_cpu() {  # seconds of CPU Redis has used (user + system, its main thread and all)
  redis-cli -p "$redis_port" info cpu | tr -d '\r' |
    awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" {s += $2} END {printf "%.6f", s}'
}
if wants redis; then
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    redis_note="skipped: redis-server not installed (apt-get install redis-server)"
  else
    claim_port redis
    redis_port=${port_of[redis]}
    unset 'port_of[redis]'  # not an HTTP target
    start redis "$redis_cpu" redis-server --bind 127.0.0.1 --port "$redis_port" --save "" \
      --appendonly no --dir "$run"
    wait_listening redis "$redis_port"
    sluice_config sluice_redis 1 \
      "{ type: redis, max_keys: 1000000, redis: { url: \"redis://127.0.0.1:$redis_port/0\" } }"
    if ! "$sluice" check "$run/sluice_redis.yaml" >"$run/redis-check.log" 2>&1; then
      redis_note="skipped: sluice check rejects the Redis store: $(grep -m1 -v '^listen' "$run/redis-check.log")"
      unset 'port_of[sluice_redis]'
    else
      start sluice_redis "$server_cpus" "$sluice" --config "$run/sluice_redis.yaml" --log-level warn
      wait_listening sluice_redis "${port_of[sluice_redis]}"
    fi
  fi
  if [[ -n $redis_note ]]; then echo "redis: $redis_note" >&2; fi
fi

for name in nginx haproxy; do wait_listening "$name" "${port_of[$name]}"; done
for name in "${!port_of[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'X-API-Key: preflight' \
    "http://127.0.0.1:${port_of[$name]}/limited/x" || true)
  if [[ $code != 200 ]]; then
    echo "preflight: $name answered $code instead of 200; its output:" >&2
    cat "$run/$name.log" >&2
    exit 1
  fi
done
if [[ -n ${pid_of[sluice_redis]:-} ]] && (($(redis_calls) == 0)); then
  redis_note="skipped: sluice with the Redis store answered without sending Redis a command"
  echo "redis: $redis_note" >&2
  unset 'port_of[sluice_redis]'
fi

# --- load ----------------------------------------------------------------------------------------
printf 'wrk.headers["X-API-Key"] = "k1"\n' >"$run/onekey.lua"
printf 'wrk.headers["X-API-Key"] = "flood"\n' >"$run/flood.lua"
cat >"$run/keys.lua" <<'LUA'
-- 100 000 distinct API keys, each coming back every 100 000 requests.
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", nil, {["X-API-Key"] = "key" .. (n * 7919 % 100000)})
end
LUA
cat >"$run/polite.lua" <<'LUA'
-- A well-behaved client: each connection waits 10 ms between requests (wrk measures latency
-- from the moment a request is written, after the wait).
wrk.headers["X-API-Key"] = "polite"
function delay() return 10 end
LUA

# CPU time (user + system, in clock ticks) a server has used: the process, its threads and its
# children (nginx's worker).
cpu_ticks() {
  local pid=$1 p total=0
  for p in "$pid" $(pgrep -P "$pid" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
ticks_per_second=$(getconf CLK_TCK)
# "busy total" clock ticks of the CPUs in a taskset list ("1", "0,1"), from /proc/stat: how busy the
# load generator's core was. Softirq time counts as busy: on loopback the sender's CPU also runs
# the receiver's TCP input.
core_ticks() {
  awk -v list=",$1," '$1 ~ /^cpu[0-9]+$/ && index(list, "," substr($1, 4) ",") {
      busy += $2 + $3 + $4 + $7 + $8 + $9; total += $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }
    END {print busy, total}' /proc/stat
}

drive_prefix=()  # a command wrk runs under (chrt for the paced client)
# drive TARGET PATH LUA CPUS THREADS CONNS [wrk args...] : prints
# "rps p99_us non2xx errors requests cpu_us_per_request_x10 client_busy_percent" (the target
# server's own CPU time, and how busy wrk's CPUs were)
drive() {
  local target=$1 path=$2 lua=$3 cpus=$4 threads=$5 c=$6 out ticks_before ticks_after
  local cores_before cores_after
  shift 6
  ticks_before=$(cpu_ticks "${pid_of[$target]}")
  cores_before=$(core_ticks "$cpus")
  out=$(timeout $((secs + 20)) "${drive_prefix[@]}" taskset -c "$cpus" wrk -t"$threads" -c"$c" -d"${secs}s" --latency \
    -s "$run/$lua.lua" "$@" "http://127.0.0.1:${port_of[$target]}$path" 2>&1 || true)
  ticks_after=$(cpu_ticks "${pid_of[$target]}")
  cores_after=$(core_ticks "$cpus")
  awk -v ticks=$((ticks_after - ticks_before)) -v hz="$ticks_per_second" \
    -v cores="$cores_before $cores_after" '
    function us(v) {
      if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6
      return v * 1e6
    }
    /Requests\/sec/ {rps = $2}
    $1 == "99%" {p99 = us($2)}
    /requests in/ {requests = $1}
    /Non-2xx or 3xx/ {non2xx = $NF}
    /Socket errors/ {gsub(/,/, ""); errors = $4 + $6 + $8 + $10}
    END {
      cpu = requests > 0 ? ticks * 1e7 / hz / requests : 0
      split(cores, k, " "); busy = k[4] > k[2] ? 100 * (k[3] - k[1]) / (k[4] - k[2]) : 0
      printf "%d %d %d %d %d %d %d\n", rps, p99, non2xx, errors, requests, cpu, busy
    }' <<<"$out"
}

declare -A results  # "scenario|target" -> "rps/p99/non2xx/errors ..." one entry per round
record() {  # record SCENARIO TARGET "rps p99 non2xx errors requests cpu_x10 client_busy"
  local rps p99 non2xx errors requests cpu busy
  read -r rps p99 non2xx errors requests cpu busy <<<"$3"
  results[$1|$2]+="$rps/$p99/$non2xx/$errors/$cpu/$busy "
  printf '  %-22s %-13s %8d rps  p99 %8s  non-2xx %d  errors %d\n' "$1" "$2" "$rps" \
    "$(fmt_us "$p99")" "$non2xx" "$errors" >&2
}
fmt_us() { awk -v u="$1" 'BEGIN {if (u >= 1000) printf "%.2fms", u / 1000; else printf "%dus", u}'; }
median() { sort -n | awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
# field SCENARIO TARGET INDEX(1 rps, 2 p99, 3 non2xx, 4 errors, 5 cpu, 6 client busy %) -> median
field() {
  local v
  for v in ${results[$1|$2]:-}; do echo "$v" | cut -d/ -f"$3"; done | median
}
has() { [[ -n ${results[$1|$2]:-} ]]; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
# round_ratio FIELD NUM_SCENARIO NUM_TARGET DEN_SCENARIO DEN_TARGET... : the median over rounds of
# NUM's FIELD (1 rps, 2 p99) over that of the DEN target with the most rps in the same round.
round_ratio() {
  local f=$1 num=${results[$2|$3]:-} den_scen=$4 dens="" t
  shift 4
  for t in "$@"; do dens+="${results[$den_scen|$t]:-}|"; done
  awk -v f="$f" -v num="$num" -v dens="$dens" 'BEGIN {
    n = split(num, nv, " "); nd = split(dens, dv, "|"); k = 0
    for (r = 1; r <= n; r++) {
      split(nv[r], a, "/"); best = -1; den = 0
      for (d = 1; d < nd; d++) {
        split(dv[d], rv, " ")
        if (!(r in rv)) continue
        split(rv[r], b, "/")
        if (b[1] + 0 > best) { best = b[1] + 0; den = b[f] + 0 }
      }
      if (den > 0) ratios[++k] = a[f] / den
    }
    if (k == 0) { print "-"; exit }
    for (i = 1; i <= k; i++)
      for (j = i + 1; j <= k; j++)
        if (ratios[j] < ratios[i]) { t = ratios[i]; ratios[i] = ratios[j]; ratios[j] = t }
    printf "%.2f", k % 2 ? ratios[(k + 1) / 2] : (ratios[k / 2] + ratios[k / 2 + 1]) / 2
  }'
}
rotate() {  # rotate ROUND ITEMS... : a different first target each round, so none is always first
  local r=$1 n i
  shift
  n=$#
  local items=("$@")
  for ((i = 0; i < n; i++)); do echo "${items[$(((i + r) % n))]}"; done
}

# A vCPU of a guest like this one halts when it has nothing to run, and the host takes milliseconds
# to wake it. The paced client alone leaves both cores mostly idle, so its p99 was that wake-up
# (1-9 ms; 0.5-0.9 ms with the CPUs kept awake), while under flood nothing halts. For the run
# alone, spinners at idle priority keep both CPUs awake: a waking task preempts a SCHED_IDLE one at
# once. Not under flood: there the cores are busy anyway, and with nothing waking up to preempt
# it, a spinner picked by the scheduler would keep its CPU for a whole time slice.
awake_start() {
  local cpu
  $keep_awake && chrt -i 0 true 2>/dev/null || return 0
  for cpu in $server_cpus $client_cpus; do
    taskset -c "$cpu" chrt -i 0 sh -c 'while :; do :; done' &
    spinner_pids+=($!)
  done
}
awake_stop() {
  ((${#spinner_pids[@]})) || return 0
  kill "${spinner_pids[@]}" 2>/dev/null || true
  wait "${spinner_pids[@]}" 2>/dev/null || true
  spinner_pids=()
}

scenario_round() {
  local scen=$1 r=$2 t line requests cpu_before
  case $scen in
    allowed|keys|close)
      local lua=onekey extra=()
      if [[ $scen == keys ]]; then lua=keys; fi
      if [[ $scen == close ]]; then extra=(-H "Connection: close"); fi
      for t in $(rotate "$r" direct nginx haproxy sluice); do
        record "$scen" "$t" "$(drive "$t" /limited/x "$lua" "$client_cpus" 1 "$conns" "${extra[@]}")"
      done;;
    rejected)
      for t in $(rotate "$r" nginx haproxy sluice); do
        record rejected "$t" "$(drive "$t" /tight/x onekey "$client_cpus" 1 "$conns")"
      done;;
    redis)
      [[ -n ${port_of[sluice_redis]:-} ]] || return 0
      for path in limited tight; do
        for t in $(rotate "$r" sluice sluice_redis); do
          if [[ $t == sluice_redis ]]; then redis_commands >"$run/redis-before"; cpu_before=$(redis_cpu); fi
          line=$(drive "$t" "/$path/x" onekey "$client_cpus" 1 "$conns")
          record "redis-$path" "$t" "$line"
          read -r _ _ _ _ requests _ <<<"$line"
          if [[ $t == sluice_redis ]] && ((requests > 0)); then
            awk -v p="$path" -v a="$cpu_before" -v b="$(redis_cpu)" -v n="$requests" \
              'BEGIN {printf "%s %.2f\n", p, (b - a) * 1e6 / n}' >>"$run/redis-cpu"
            # per command: (calls after - calls before) / requests, for this round
            redis_commands | awk -v p="$path" -v r="$r" -v n="$requests" 'NR == FNR {before[$1] = $2; next}
              {printf "%s %s %s %.4f\n", p, r, $1, ($2 - before[$1]) / n}' "$run/redis-before" - \
              >>"$run/redis-per-request"
          fi
        done
      done;;
    threads)
      # Both sluice configurations, the upstream and wrk share both CPUs here (see the doc).
      pin 0,1 "${pid_of[direct]}"; pin 0,1 "${pid_of[sluice]}"; pin 0,1 "${pid_of[sluice_t2]}"
      for path in tight limited; do
        for t in $(rotate "$r" sluice sluice_t2); do
          record "threads-$path" "$t" "$(drive "$t" "/$path/x" onekey 0,1 2 "$conns")"
        done
      done
      pin "$server_cpus" "${pid_of[direct]}"; pin "$server_cpus" "${pid_of[sluice]}"
      pin "$server_cpus" "${pid_of[sluice_t2]}";;
    isolation)
      # The paced client shares CPU 1 with the flooding wrk; real-time priority lets it run the
      # moment a response arrives, so its latency is the server's, not the time it waited for CPU 1.
      if chrt -f 1 true 2>/dev/null; then drive_prefix=(chrt -f 1); fi
      # At 190 paced requests/s a 3 s run gives the p99 from its 6 worst samples: at least 10 s.
      round_secs=$secs; secs=$((secs < 10 ? 10 : secs))
      for t in $(rotate "$r" nginx haproxy sluice); do
        awake_start
        record isolation-alone "$t" "$(drive "$t" /limited/x polite "$client_cpus" 1 2)"
        awake_stop
        timeout $((secs + 22)) taskset -c "$client_cpus" wrk -t1 -c"$conns" -d"$((secs + 2))s" \
          -s "$run/flood.lua" "http://127.0.0.1:${port_of[$t]}/tight/x" >"$run/flood.out" 2>&1 &
        flood_pid=$!
        sleep 1
        record isolation-flood "$t" "$(drive "$t" /limited/x polite "$client_cpus" 1 2)"
        wait "$flood_pid" || true
        flood_pid=""
      done
      secs=$round_secs
      drive_prefix=();;
  esac
}

store_lines=""
if wants memory; then
  if [[ -x $store_bench ]]; then
    echo "memory: $store_bench (1 000 000 keys, then decide() throughput)" >&2
    store_lines=$("$store_bench" --keys 1000000 --seconds 1 || true)
  else
    store_lines="skipped: no $store_bench (build the target sluice_bench_store)"
  fi
fi

load_before=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load_before" 'BEGIN {exit !(l > 1)}'; then
  echo "note: load average $load_before: other work on this machine will make the numbers noisy" >&2
fi
round_scenarios=()
for s in allowed keys rejected close redis threads isolation; do
  if wants "$s"; then round_scenarios+=("$s"); fi
done
for ((r = 1; r <= rounds; r++)); do
  echo "round $r/$rounds" >&2
  for s in "${round_scenarios[@]}"; do scenario_round "$s" "$r"; done
done

# --- report --------------------------------------------------------------------------------------

echo
echo "sluice bench: $rounds rounds x ${secs}s, $conns connections, medians (servers on CPU $server_cpus, wrk on CPU $client_cpus)"
echo "load average (1 min) before: $load_before, after: $(cut -d' ' -f1 /proc/loadavg)"
printf '%-18s %-13s %9s %10s %9s %7s\n' scenario target rps p99 non-2xx errors
for scen in allowed keys rejected close redis-limited redis-tight threads-tight threads-limited \
  isolation-alone isolation-flood; do
  for t in direct nginx haproxy sluice sluice_redis sluice_t2; do
    has "$scen" "$t" || continue
    printf '%-18s %-13s %9d %10s %9d %7d\n' "$scen" "$t" "$(field "$scen" "$t" 1)" \
      "$(fmt_us "$(field "$scen" "$t" 2)")" "$(field "$scen" "$t" 3)" "$(field "$scen" "$t" 4)"
  done
done

echo
echo "ratios: median over the rounds of the ratio within each round (interleaving makes each round"
echo "a fair comparison even when the machine's load changes between rounds)"
# wrk_bound SCENARIO: true when wrk's CPU was at least 95 % busy in the median run of every proxy:
# the rate is then the load generator's, the same for any server fast enough.
wrk_bound() {
  local t
  for t in nginx haproxy sluice; do
    has "$1" "$t" || continue
    (($(field "$1" "$t" 6) >= 95)) || return 1
  done
}
for scen in allowed keys rejected close; do
  has "$scen" sluice || continue
  printf '%-18s sluice/best peer   rps %5sx   p99 %5sx (lower is better; best = most rps that round)%s\n' \
    "$scen" "$(round_ratio 1 "$scen" sluice "$scen" nginx haproxy)" \
    "$(round_ratio 2 "$scen" sluice "$scen" nginx haproxy)" \
    "$(wrk_bound "$scen" && echo "  [wrk-bound, see below]")"
done
for path in limited tight; do
  has "redis-$path" sluice_redis || continue
  printf '%-18s redis/memory       rps %5sx   p99 %5sx\n' "redis-$path" \
    "$(round_ratio 1 "redis-$path" sluice_redis "redis-$path" sluice)" \
    "$(round_ratio 2 "redis-$path" sluice_redis "redis-$path" sluice)"
done
for path in tight limited; do
  has "threads-$path" sluice_t2 || continue
  printf '%-18s threads 2/1        rps %5sx\n' "threads-$path" \
    "$(round_ratio 1 "threads-$path" sluice_t2 "threads-$path" sluice)"
done
# What a second thread costs each request: 1.00x means the threads share nothing that slows
# either, so with a core of its own each (which wrk takes here) two would serve 2 / that as much.
for path in tight limited; do
  has "threads-$path" sluice_t2 || continue
  cpu_ratio=$(ratio "$(field "threads-$path" sluice_t2 5)" "$(field "threads-$path" sluice 5)")
  printf '%-18s threads 2/1        CPU time per request %5sx (projected scaling with a core per thread: %sx)\n' \
    "threads-$path" "$cpu_ratio" "$(awk -v r="$cpu_ratio" 'BEGIN {if (r > 0) printf "%.2f", 2 / r; else print "-"}')"
done
proxy_scenarios=false  # any of the scenarios that compare sluice with the peers ran
for scen in allowed keys rejected close; do has "$scen" sluice && proxy_scenarios=true; done
echo
if $proxy_scenarios; then
  echo "CPU time per request of the server process itself (user + system, median over rounds; the"
  echo "rps above is what the whole server core allows, this is what each request costs the proxy)"
fi
for scen in allowed keys rejected close; do
  has "$scen" sluice || continue
  line=$(printf '%-18s' "$scen")
  best=""
  for t in direct nginx haproxy sluice; do
    has "$scen" "$t" || continue
    cpu=$(field "$scen" "$t" 5)
    line+=$(awk -v t="$t" -v c="$cpu" 'BEGIN {printf " %s %.1f us", t, c / 10}')
    if [[ $t == nginx || $t == haproxy ]] && { [[ -z $best ]] || ((cpu < best)); }; then best=$cpu; fi
  done
  echo "$line   sluice/leaner peer $(ratio "$(field "$scen" sluice 5)" "${best:-0}")x (lower is better)"
done
if $proxy_scenarios; then
  echo
  echo "load generator: how busy wrk's CPU was (user + system + softirq, median over rounds). From"
  echo "95 % on, wrk set the rate, not the server: the rps ratio then says little, the CPU time holds"
fi
for scen in allowed keys rejected close; do
  has "$scen" sluice || continue
  line=$(printf '%-18s' "$scen")
  for t in direct nginx haproxy sluice; do
    has "$scen" "$t" || continue
    line+=" $t $(field "$scen" "$t" 6)%"
  done
  echo "$line$(wrk_bound "$scen" && echo "   wrk-bound")"
done
for scen in redis-limited redis-tight; do
  has "$scen" sluice_redis || continue
  # sluice's own share of the Redis store's cost (hiredis, batching); Redis' own is below.
  echo "$(printf '%-18s' "$scen") sluice $(field "$scen" sluice 5 | awk '{printf "%.1f", $1 / 10}') us" \
    "sluice_redis $(field "$scen" sluice_redis 5 | awk '{printf "%.1f", $1 / 10}') us" \
    "  redis/memory $(ratio "$(field "$scen" sluice_redis 5)" "$(field "$scen" sluice 5)")x"
done

echo
for t in nginx haproxy sluice; do
  has isolation-flood "$t" || continue
  printf '%-18s %-8s polite rps %5sx   polite p99 %5sx (under flood / alone)\n' isolation "$t" \
    "$(round_ratio 1 isolation-flood "$t" isolation-alone "$t")" \
    "$(round_ratio 2 isolation-flood "$t" isolation-alone "$t")"
done

echo
if [[ -n $redis_note ]]; then echo "redis store: $redis_note"; fi
if [[ -s $run/redis-per-request ]]; then
  for path in limited tight; do
    # Script calls (EVALSHA + EVAL: what sluice sends per request; one per batch) per request,
    # the median over rounds; then each command the scripts run, for information.
    printf 'redis script calls per request (%s, median): %s EVALSHA+EVAL; inside the scripts: %s\n' \
      "$path" "$(awk -v p="$path" '$1 == p && ($3 == "evalsha" || $3 == "eval") {n[$2] += $4}
          END {for (r in n) print n[r]}' "$run/redis-per-request" | sort -g |
        awk '{v[NR] = $1} END {if (NR == 0) print "?"; else printf "%.3f", v[int((NR + 1) / 2)]}')" \
      "$(awk -v p="$path" '$1 == p && $3 != "evalsha" && $3 != "eval" && $4 >= 0.0005 {print $3, $4}' \
        "$run/redis-per-request" | sort -k1,1 -k2,2g | awk '{v[$1] = v[$1] " " $2} END {
          for (c in v) { n = split(v[c], a, " "); printf "%s %.3f ", c, a[int((n + 1) / 2)] } }')"
  done
  for path in limited tight; do
    printf 'redis CPU time per request (%s, median): %s us (Redis on CPU %s)\n' "$path" \
      "$(awk -v p="$path" '$1 == p {print $2}' "$run/redis-cpu" | sort -g |
        awk '{v[NR] = $1} END {if (NR == 0) print "?"; else if (NR % 2) print v[(NR + 1) / 2]
          else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2}')" "$redis_cpu"
  done
fi
if wants memory; then
  echo "idle RSS: sluice threads 1: ${idle_rss_1} KiB; threads 2: ${idle_rss_2:-?} KiB"
  echo "RSS after the runs: sluice threads 1: $(rss_kib "${pid_of[sluice]}") KiB"
  echo "memory store (sluice_bench_store):"
  sed 's/^/  /' <<<"$store_lines"
fi
