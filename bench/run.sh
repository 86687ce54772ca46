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
#   BENCH_BASELINE=1     also load GET /healthz (no authentication, no database): the
#                        frontdesk CPU of serving any request, for the breakdown
#   FRONTDESK_CONTEXT_MODE  passed to the server: postgres (default: one prepared set_config
#                        statement) or citus (one SET LOCAL per setting); pgbench runs
#                        PGBENCH_SCRIPT either way (bench/get_tenant_set_local.sql is
#                        the citus form)
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

. "$root/bench/lib.sh"
bench_tools

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
    bench_stop_server || status=1
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
bench_start_server

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
# (@TENANT@ and @USER@ in a template become the ids: SET takes no parameters, see
# get_tenant_set_local.sql.)
sed -e "s/@TENANT@/$tenant/g" -e "s/@USER@/$user/g" "$pgbench_template" >"$out/pgbench-1rt.sql"
awk '/^commit;$/ { held = $0; next } { print } /^\\endpipeline/ && held { print held; held = "" }' \
    "$out/pgbench-1rt.sql" >"$out/pgbench-2rt.sql"
# (pgbench's -d is --debug: the database name is its last, positional argument.)
# pgbench logs in as frontdesk_app, the server's request login, and binds what the server
# binds (get_tenant.sql): the tenant id, then the context's values (empties=0: the empty
# ones are read once per connection).
pgb=("$pgbench" -n -h "$data/run" -U frontdesk_app -M "$pgbench_mode" -D "tenant=$tenant"
    -D "user=$user" -D caller_kind=user -D member_role=owner -D tenant_version=0 -D empties=0)
for shape in 1rt 2rt; do
    "${pgb[@]}" -f "$out/pgbench-$shape.sql" -c 1 -j 1 -t 1 frontdesk >"$out/pgbench-check-$shape.txt" 2>&1 \
        || { cat "$out/pgbench-check-$shape.txt" >&2; die "pgbench cannot run $out/pgbench-$shape.sql"; }
done

# (run_wrk, run_pgbench, the percentiles and the CPU accounting are in lib.sh)

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
    read -r api_rps api_p50 api_p99 _ a_gen a_srv a_pg a_other a_pct < <(run_wrk get-tenant "$clients")

    say "bench: $clients clients: pgbench -M $pgbench_mode, one round trip (${warmup}s warmup + ${duration}s)"
    read -r pg_tps pg_p50 pg_p99 _ p_gen _ p_pg p_other p_pct < <(run_pgbench 1rt "$out/pgbench-1rt.sql" "$clients")
    say "bench: $clients clients: pgbench -M $pgbench_mode, two round trips (${warmup}s warmup + ${duration}s)"
    read -r pg2_tps pg2_p50 pg2_p99 _ q_gen _ q_pg q_other q_pct < <(run_pgbench 2rt "$out/pgbench-2rt.sql" "$clients")

    if [[ ${BENCH_BASELINE:-0} == 1 ]]; then
        say "bench: $clients clients: GET /healthz (wrk ${warmup}s warmup + ${duration}s)"
        read -r h_rps _ _ _ h_gen h_srv h_pg h_other h_pct < <(lua=$root/bench/healthz.lua run_wrk healthz "$clients")
        cpu_rows+=("| $clients | GET /healthz (wrk, $h_rps req/s) | $h_gen | $h_srv | $h_pg | $h_other ($h_pct%) | $((h_gen + h_srv + h_pg + h_other)) |")
    fi

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
printf '\n(%s, context form %s, pool %s, %ss per load after %ss warmup, wrk -t %s, pgbench -M %s -j %s; CPU busy before loads: at most %s%%)\n' \
    "$(date -u +%Y-%m-%d)" "${FRONTDESK_CONTEXT_MODE:-postgres}" "$pool" "$duration" "$warmup" "$threads" "$pgbench_mode" "$threads" "$busy_max"
if ((busy_max > 10 || other_max > 15)); then
    say "bench: WARNING: other work shared the CPUs (busy before a load: ${busy_max}%, other during a load: up to ${other_max}%); these numbers are not reliable"
fi
if [[ -s $out/problems.txt ]]; then
    say "bench: problems during the runs:"
    sed 's/^/  /' "$out/problems.txt" >&2
    exit 1
fi
