#!/usr/bin/env bash
# One authenticated read, GET /v1/tenants/{tenant} with a user JWT, measured two ways against
# the same throwaway database in one run: through the API with wrk, and as the bare SQL
# transaction with pgbench. Prints one Markdown table row per client count and the ratio
# API ÷ pgbench. See bench/README.md and docs/BENCHMARKS.md.
#
# Knobs (environment):
#   FRONTDESK_BIN        server binary (default: $CARGO_TARGET_DIR or target, /release/frontdesk)
#   FRONTDESK_POOL_SIZE  the server's request pool (default 8, see docs/BENCHMARKS.md)
#   BENCH_CLIENTS        client counts, space separated (default "8 32")
#   BENCH_DURATION       seconds measured per load and client count (default 20)
#   BENCH_WARMUP         seconds of unmeasured load before each measurement (default 5)
#   BENCH_THREADS        wrk threads and pgbench -j (default 2)
#   PGBENCH_MODE         pgbench query mode: prepared or extended (default prepared)
#   PGBENCH_SCRIPT       pgbench template (default bench/get_tenant.sql)
#   BENCH_KEEP=1         keep the temporary directory (data, logs) and print its path
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${FRONTDESK_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/frontdesk}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
pool=${FRONTDESK_POOL_SIZE:-8}
clients_list=${BENCH_CLIENTS:-"8 32"}
duration=${BENCH_DURATION:-20}
warmup=${BENCH_WARMUP:-5}
threads=${BENCH_THREADS:-2}
pgbench_mode=${PGBENCH_MODE:-prepared}
pgbench_template=${PGBENCH_SCRIPT:-$root/bench/get_tenant.sql}
lua=$root/bench/get_tenant.lua

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------
[[ -x $bin ]] || die "no server binary at $bin (cargo build --release -p frontdesk, or set FRONTDESK_BIN)"
command -v wrk >/dev/null || die "wrk is not installed (Debian: apt-get install wrk)"
command -v curl >/dev/null || die "curl is not installed"
pg_bindir=""
if command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/pgbench ]]; then
    pg_bindir=$(pg_config --bindir)
else
    for dir in /usr/lib/postgresql/*/bin; do # the last (newest) one with pgbench wins
        if [[ -x $dir/pgbench ]]; then pg_bindir=$dir; fi
    done
fi
pgbench=${PGBENCH:-}
if [[ -z $pgbench ]]; then
    if [[ -n $pg_bindir && -x $pg_bindir/pgbench ]]; then pgbench=$pg_bindir/pgbench
    else pgbench=$(command -v pgbench || true); fi
fi
[[ -n $pgbench && -x $pgbench ]] || die "pgbench not found (Debian: apt-get install postgresql)"

# --- a throwaway data directory ----------------------------------------------------------
# Under /tmp and world-traversable: as root, PostgreSQL runs as the postgres user, which must
# reach pg/ and run/ inside it (frontdesk makes those two 0700 for that user).
tmp=$(mktemp -d /tmp/fdbench.XXXXXX)
chmod 755 "$tmp"
data=$tmp/data
out=$tmp/out
mkdir -p "$data" "$out"
chmod 755 "$data"
server_pid=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            say "bench: server did not stop on SIGTERM within 30s; killing it"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
    fi
    # The server stops its cluster on SIGTERM; make sure nothing of this data dir is left.
    if [[ -f $data/pg/postmaster.pid ]]; then
        local pm
        pm=$(head -n 1 "$data/pg/postmaster.pid" 2>/dev/null || true)
        if [[ -n $pm ]] && kill -0 "$pm" 2>/dev/null; then
            say "bench: PostgreSQL (pid $pm) of $data/pg is still running; stopping it"
            if [[ $(id -u) == 0 ]]; then
                runuser -u postgres -- "${pg_bindir:+$pg_bindir/}pg_ctl" -D "$data/pg" stop -m fast >&2 || true
            else
                "${pg_bindir:+$pg_bindir/}pg_ctl" -D "$data/pg" stop -m fast >&2 || true
            fi
            status=1
        fi
    fi
    if pgrep -f -- "$data/pg" >/dev/null 2>&1; then
        say "bench: processes of $data/pg are left:"
        pgrep -a -f -- "$data/pg" >&2 || true
        status=1
    fi
    if [[ -f $out/server.log ]]; then
        local problems
        problems=$(grep -E 'WARN|ERROR|panicked' "$out/server.log" || true)
        if [[ -n $problems ]]; then
            say "bench: the server logged warnings or errors ($(printf '%s\n' "$problems" | wc -l) lines), first ones:"
            printf '%s\n' "$problems" | head -n 20 >&2
        fi
    fi
    if [[ -f $data/run/postgresql.log ]]; then
        local pg_problems
        pg_problems=$(grep -E 'ERROR|FATAL|PANIC' "$data/run/postgresql.log" | grep -v 'terminating connection due to administrator command' || true)
        if [[ -n $pg_problems ]]; then
            say "bench: PostgreSQL logged errors ($(printf '%s\n' "$pg_problems" | wc -l) lines), first ones:"
            printf '%s\n' "$pg_problems" | head -n 20 >&2
        fi
    fi
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        say "bench: kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the server --------------------------------------------------------------------------
port=""
for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 40000))
    if ! ss -Hltn "sport = :$candidate" 2>/dev/null | grep -q .; then
        port=$candidate
        break
    fi
done
[[ -n $port ]] || die "no free port found"
base=http://127.0.0.1:$port

say "bench: starting $bin on $base, pool $pool, data in $data"
FRONTDESK_DATA_DIR=$data FRONTDESK_LISTEN=127.0.0.1:$port FRONTDESK_LOG=warn \
    FRONTDESK_POOL_SIZE=$pool "$bin" serve >"$out/server.log" 2>&1 &
server_pid=$!

ready=0
for _ in $(seq 1 600); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$out/server.log" >&2
        die "the server exited before it was ready"
    fi
    if curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ $ready == 1 ]] || die "the server was not ready within 60s"

# --- a user, a token, a tenant -------------------------------------------------------------
user=$(cat /proc/sys/kernel/random/uuid)
token=$(FRONTDESK_DATA_DIR=$data "$bin" token --sub "$user" --ttl 2h)
created=$(curl -fsS -X POST "$base/v1/tenants" \
    -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"slug":"bench","name":"Bench"}') || die "creating the tenant failed"
tenant=$(printf '%s' "$created" | grep -oE '"id" *: *"[0-9a-f-]{36}"' | head -n 1 | grep -oE '[0-9a-f-]{36}' || true)
[[ -n $tenant ]] || die "no tenant id in the response: $created"

code=$(curl -sS -o "$out/get.json" -w '%{http_code}' -H "Authorization: Bearer $token" "$base/v1/tenants/$tenant")
[[ $code == 200 ]] || die "GET /v1/tenants/$tenant answered $code: $(cat "$out/get.json")"

# --- the pgbench scripts -----------------------------------------------------------------
# get_tenant.sql pipelines the whole transaction, commit included: one round trip, like the
# server, and pgbench's fastest shape (the reference). The second script moves `commit` out
# of the pipeline into a round trip of its own, to show what a second trip costs.
sed -e "s/@TENANT@/$tenant/g" -e "s/@USER@/$user/g" "$pgbench_template" >"$out/pgbench-1rt.sql"
awk '/^commit;$/ { held = $0; next } { print } /^\\endpipeline/ && held { print held; held = "" }' \
    "$out/pgbench-1rt.sql" >"$out/pgbench-2rt.sql"
# (pgbench's -d is --debug: the database name is its last, positional argument.)
pgb=("$pgbench" -n -h "$data/run" -U frontdesk_authenticator -M "$pgbench_mode" -D "tenant=$tenant")
for shape in 1rt 2rt; do
    "${pgb[@]}" -f "$out/pgbench-$shape.sql" -c 1 -j 1 -t 1 frontdesk >"$out/pgbench-check-$shape.txt" 2>&1 \
        || { cat "$out/pgbench-check-$shape.txt" >&2; die "pgbench cannot run $out/pgbench-$shape.sql"; }
done

# --- helpers -----------------------------------------------------------------------------
# wrk prints latencies as 812.00us, 1.23ms or 1.05s: in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.2f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
        else { printf "?" }
    }'
}

# Nearest-rank percentiles (ms) of pgbench's per-transaction log (3rd field: latency in µs).
pgbench_percentiles() {
    cat "$@" | awk '{ print $3 }' | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "? ?"; exit }
            i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++; if (i50 < 1) i50 = 1
            i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++; if (i99 < 1) i99 = 1
            printf "%.2f %.2f\n", v[i50] / 1000, v[i99] / 1000
        }'
}

ratio() { awk -v a="$1" -v p="$2" 'BEGIN { if (p > 0) printf "%.2f", a / p; else print "?" }'; }

# CPU accounting, in clock ticks summed over all cores. The load generators, the server and
# PostgreSQL share the machine's cores, so each measured load also reports where its CPU
# went per request, and how much went to anything else (another job on the machine makes
# the numbers meaningless; softirq work for loopback traffic is counted there too).
hz=$(getconf CLK_TCK)
busy_ticks() { # user nice system idle iowait irq softirq steal
    local a b c d e f g h
    read -r _ a b c d e f g h _ </proc/stat
    echo $((a + b + c + f + g + h))
}
proc_ticks() { # utime + stime + reaped children's cutime + cstime of one process
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $((${12} + ${13} + ${14} + ${15}))
}
cluster_ticks() { # the postmaster (with its reaped backends) and its live children
    local pm t p
    pm=$(head -n 1 "$data/pg/postmaster.pid")
    t=$(proc_ticks "$pm")
    for p in $(pgrep -P "$pm"); do t=$((t + $(proc_ticks "$p"))); done
    echo "$t"
}
# "total server postgres generator"; $1 is the shell that runs (and reaps) the generator.
snapshot() { echo "$(busy_ticks) $(proc_ticks "$server_pid") $(cluster_ticks) $(proc_ticks "$1")"; }
# Per request in µs: "generator server postgres other other%", from two snapshots and a count.
cpu_split() {
    awk -v n="$1" -v hz="$hz" -v a="$2" -v b="$3" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        tot = y[1] - x[1]; srv = y[2] - x[2]; pg = y[3] - x[3]; gen = y[4] - x[4]
        other = tot - srv - pg - gen; if (other < 0) other = 0
        us = 1e6 / hz / (n > 0 ? n : 1)
        printf "%.0f %.0f %.0f %.0f %.0f\n", gen * us, srv * us, pg * us, other * us, (tot > 0 ? 100 * other / tot : 0)
    }'
}

# Percent of CPU busy over two seconds while nothing of ours runs.
cpu_busy() {
    local t1 t2 b1 b2 a b c d e f g h
    read -r _ a b c d e f g h _ </proc/stat; t1=$((a + b + c + d + e + f + g + h)); b1=$((a + b + c + f + g + h))
    sleep 2
    read -r _ a b c d e f g h _ </proc/stat; t2=$((a + b + c + d + e + f + g + h)); b2=$((a + b + c + f + g + h))
    echo $((100 * (b2 - b1) / (t2 - t1 > 0 ? t2 - t1 : 1)))
}

# One pgbench load; prints "tps p50 p99 n gen srv pg other other%".
run_pgbench() {
    local shape=$1 clients=$2 me=$BASHPID tps p50 p99 n failed before after
    "${pgb[@]}" -f "$out/pgbench-$shape.sql" -c "$clients" -j "$threads" -T "$warmup" frontdesk \
        >"$out/pgbench-warmup-$shape-$clients.txt" 2>&1
    rm -f "$out/pgblog-$shape-$clients".*
    sleep 0.5 # let the warmup's backends exit
    before=$(snapshot "$me")
    "${pgb[@]}" -f "$out/pgbench-$shape.sql" -c "$clients" -j "$threads" -T "$duration" \
        -l --log-prefix="$out/pgblog-$shape-$clients" frontdesk >"$out/pgbench-$shape-$clients.txt" 2>&1
    sleep 0.5
    after=$(snapshot "$me")
    tps=$(awk '/^tps = / { printf "%.0f", $3; exit }' "$out/pgbench-$shape-$clients.txt")
    n=$(awk '/^number of transactions actually processed:/ { split($NF, a, "/"); print a[1] }' \
        "$out/pgbench-$shape-$clients.txt")
    read -r p50 p99 < <(pgbench_percentiles "$out/pgblog-$shape-$clients".*)
    failed=$(awk -F': ' '/^number of failed transactions/ { split($2, a, " "); print a[1] }' \
        "$out/pgbench-$shape-$clients.txt")
    if [[ -n $failed && $failed != 0 ]]; then
        echo "pgbench ($shape) at $clients clients: $failed failed transactions" >>"$out/problems.txt"
    fi
    echo "$tps $p50 $p99 $n $(cpu_split "$n" "$before" "$after")"
}

# --- the runs ----------------------------------------------------------------------------
export BENCH_TOKEN=$token BENCH_TENANT=$tenant
rows=()
rows2=()
cpu_rows=()
: >"$out/problems.txt"
busy_max=0
other_max=0
for clients in $clients_list; do
    busy=$(cpu_busy)
    ((busy > busy_max)) && busy_max=$busy
    say "bench: $clients clients: CPU ${busy}% busy before the loads"

    say "bench: $clients clients: API (wrk ${warmup}s warmup + ${duration}s)"
    wrk -t "$threads" -c "$clients" -d "${warmup}s" -s "$lua" "$base" >"$out/wrk-warmup-$clients.txt"
    me=$BASHPID
    before=$(snapshot "$me")
    wrk -t "$threads" -c "$clients" -d "${duration}s" --latency -s "$lua" "$base" >"$out/wrk-$clients.txt"
    after=$(snapshot "$me")
    api_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out/wrk-$clients.txt")
    api_n=$(awk '/ requests in / { print $1; exit }' "$out/wrk-$clients.txt")
    api_p50=$(to_ms "$(awk '$1 == "50%" { print $2; exit }' "$out/wrk-$clients.txt")")
    api_p99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$out/wrk-$clients.txt")")
    read -r a_gen a_srv a_pg a_other a_pct < <(cpu_split "$api_n" "$before" "$after")
    if grep -qE 'Non-2xx|Socket errors' "$out/wrk-$clients.txt"; then
        echo "wrk at $clients clients: $(grep -E 'Non-2xx|Socket errors' "$out/wrk-$clients.txt" | tr -s ' ' | tr '\n' ';')" \
            >>"$out/problems.txt"
    fi

    say "bench: $clients clients: pgbench -M $pgbench_mode, one round trip (${warmup}s warmup + ${duration}s)"
    read -r pg_tps pg_p50 pg_p99 _ p_gen _ p_pg p_other p_pct < <(run_pgbench 1rt "$clients")
    say "bench: $clients clients: pgbench -M $pgbench_mode, two round trips (${warmup}s warmup + ${duration}s)"
    read -r pg2_tps pg2_p50 pg2_p99 _ q_gen _ q_pg q_other q_pct < <(run_pgbench 2rt "$clients")

    for pct in "$a_pct" "$p_pct" "$q_pct"; do ((pct > other_max)) && other_max=$pct; done
    rows+=("| $clients | $api_rps | $api_p50 ms | $api_p99 ms | $pg_tps | $pg_p50 ms | $pg_p99 ms | $(ratio "$api_rps" "$pg_tps") |")
    rows2+=("| $clients | $api_rps | $pg2_tps | $pg2_p50 ms | $pg2_p99 ms | $(ratio "$api_rps" "$pg2_tps") |")
    cpu_rows+=("| $clients | API (wrk) | $a_gen | $a_srv | $a_pg | $a_other ($a_pct%) | $((a_gen + a_srv + a_pg + a_other)) |")
    cpu_rows+=("| $clients | pgbench, 1 round trip | $p_gen | – | $p_pg | $p_other ($p_pct%) | $((p_gen + p_pg + p_other)) |")
    cpu_rows+=("| $clients | pgbench, 2 round trips | $q_gen | – | $q_pg | $q_other ($q_pct%) | $((q_gen + q_pg + q_other)) |")
done

# --- the report --------------------------------------------------------------------------
printf '\n'
printf '| clients | API req/s | API p50 | API p99 | pgbench tps | pgbench p50 | pgbench p99 | API ÷ pgbench |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${rows[@]}"
printf '\npgbench with commit in a second round trip of its own (for comparison):\n\n'
printf '| clients | API req/s | pgbench tps | pgbench p50 | pgbench p99 | API ÷ pgbench |\n'
printf '|---:|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${rows2[@]}"
printf '\nCPU per request in µs, all cores (other: softirq and anything else on the machine):\n\n'
printf '| clients | load | generator | frontdesk | PostgreSQL | other | total |\n'
printf '|---:|---|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${cpu_rows[@]}"
printf '\n(%s, pool %s, %ss per load after %ss warmup, wrk -t %s, pgbench -M %s -j %s; CPU busy before loads: at most %s%%)\n' \
    "$(date -u +%Y-%m-%d)" "$pool" "$duration" "$warmup" "$threads" "$pgbench_mode" "$threads" "$busy_max"
if ((busy_max > 10 || other_max > 15)); then
    say "bench: WARNING: other work shared the CPUs (busy before a load: ${busy_max}%, other during a load: up to ${other_max}%); these numbers are not reliable"
fi
if [[ -s $out/problems.txt ]]; then
    say "bench: problems during the runs:"
    sed 's/^/  /' "$out/problems.txt" >&2
    exit 1
fi
