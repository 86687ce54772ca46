#!/usr/bin/env bash
# POST a message and GET a conversation's last 50 messages on Citus (a coordinator and two
# workers, all on this machine) beside the same on one plain PostgreSQL 15 (issue 11;
# docs/BENCHMARKS.md, "Citus (coordinator + 2 workers) beside one PostgreSQL").
#
# Builds nothing: run `cargo build --release -p frontdesk` first. Under a temporary
# directory in /tmp it starts, one after the other:
#   pg     one PostgreSQL 15 cluster;
#   citus  three PostgreSQL 15 clusters with Citus (coordinator + 2 workers);
# each on loopback TCP with trust authentication (as the `postgres` OS user when run as
# root, with its HOME), the same settings but for Citus's. On each: the database and
# the roles, `frontdesk migrate up` (DATABASE_URL = the superuser on the server, the
# coordinator for Citus: that distributes every table), the same dataset
# (bench/citus_dataset.sql: 20 tenants × 20 conversations × 250 messages by default),
# then `frontdesk serve` (pool 8, webhook worker off) and wrk (bench/citus.lua) for each
# request: a warm-up, then the measured run. Every request goes to a random conversation
# of a random tenant with that tenant's API key.
#
# Prints a Markdown table per request: req/s, p50, p99, and CPU per request (µs, summed
# over all cores, from /proc utime+stime over the measured window ÷ requests) of the
# frontdesk process and of all PostgreSQL processes (every postmaster, its live children
# and the children it reaped), and Citus ÷ PG.
#
# Knobs: FRONTDESK_BIN, CBENCH_SYSTEMS ("pg citus"), CBENCH_CLIENTS (8), CBENCH_DURATION (20),
# CBENCH_WARMUP (5), CBENCH_THREADS (2), CBENCH_TENANTS (20), CBENCH_CONVERSATIONS (20),
# CBENCH_MESSAGES (250), CBENCH_SHARDS (citus.shard_count, 8), CBENCH_KEEP=1 (keep the
# directory and print its path).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# say, die, to_ms, ratio, busy_ticks, proc_ticks, cpu_busy, hz (reads only these)
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

bin=${FRONTDESK_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/frontdesk}
systems=${CBENCH_SYSTEMS:-pg citus}
clients=${CBENCH_CLIENTS:-8}
duration=${CBENCH_DURATION:-20}
warmup=${CBENCH_WARMUP:-5}
threads=${CBENCH_THREADS:-2}
tenants=${CBENCH_TENANTS:-20}
conversations=${CBENCH_CONVERSATIONS:-20}
messages=${CBENCH_MESSAGES:-250}
shards=${CBENCH_SHARDS:-8}
pg_bin=/usr/lib/postgresql/15/bin
lua=$root/bench/citus.lua

[[ -x $bin ]] || die "no server binary at $bin (cargo build --release -p frontdesk)"
command -v wrk >/dev/null || die "wrk is not installed"
[[ -x $pg_bin/postgres ]] || die "PostgreSQL 15 is not in $pg_bin"
[[ -f $($pg_bin/pg_config --pkglibdir)/citus.so ]] || die "Citus is not installed into PostgreSQL 15"

dir=$(mktemp -d /tmp/cbench.XXXXXX)
chmod 755 "$dir"
out=$dir/out
mkdir -p "$out"
server_pid=""
nodes=() # data directories of the running clusters

as_pg() { # run a PostgreSQL tool as the cluster's user
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- env HOME="$(getent passwd postgres | cut -d: -f6)" "$@"
    else
        "$@"
    fi
}
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
    done
}
psql_on() { # PORT DATABASE ARGS…: psql as the superuser over loopback TCP
    local port=$1 db=$2
    shift 2
    "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"
}

# start_node NAME CITUS(0|1): initdb, settings, start; sets node_port.
start_node() {
    local name=$1 citus=$2 d=$dir/$1 port
    port=$(free_port)
    mkdir -p "$d"
    [[ $(id -u) == 0 ]] && chown postgres: "$d"
    as_pg "$pg_bin/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$out/initdb-$name.log" 2>&1 \
        || die "initdb $name failed (see $out/initdb-$name.log)"
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$d'"
        echo "max_connections = 200"
        echo "shared_buffers = '256MB'"
        echo "logging_collector = off"
        if [[ $citus == 1 ]]; then
            echo "shared_preload_libraries = 'citus'"
            echo "citus.enable_unsafe_triggers = on"
            echo "citus.propagate_set_commands = 'local'"
            echo "citus.shard_count = $shards"
        fi
    } | as_pg tee -a "$d/data/postgresql.conf" >/dev/null
    as_pg "$pg_bin/pg_ctl" -D "$d/data" -l "$d/postgresql.log" -w -t 60 start >"$out/start-$name.log" 2>&1 \
        || die "$name did not start (see $d/postgresql.log)"
    nodes+=("$d/data")
    node_port=$port
}

stop_nodes() {
    local n
    for n in "${nodes[@]}"; do
        as_pg "$pg_bin/pg_ctl" -D "$n" -w -m fast stop >/dev/null 2>&1 || true
    done
    nodes=()
}

stop_server() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}

cleanup() {
    stop_server
    stop_nodes
    if [[ ${CBENCH_KEEP:-0} == 1 ]]; then say "bench: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

# The CPU ticks of every PostgreSQL process of the running clusters: "all first rest"
# (first: the single server or the coordinator; rest: the workers).
pg_ticks() {
    local n pm t p all=0 first=""
    for n in "${nodes[@]}"; do
        pm=$(head -n 1 "$n/postmaster.pid")
        t=$(proc_ticks "$pm")
        for p in $(pgrep -P "$pm"); do t=$((t + $(proc_ticks "$p"))); done
        all=$((all + t))
        [[ -z $first ]] && first=$t
    done
    echo "$all $first $((all - first))"
}
snapshot() { echo "$(busy_ticks) $(proc_ticks "$server_pid") $(pg_ticks)"; }

# measure SYSTEM MODE: warm-up, measured run; appends "SYSTEM MODE rps p50 p99 n srv_us
# pg_us other_us coordinator_us workers_us" to results (per request; other: wrk, softirq
# and anything else on the machine).
measure() {
    local system=$1 mode=$2 log=$out/wrk-$1-$2.txt before after rps n p50 p99
    export CBENCH_MODE=$mode CBENCH_TARGETS=$out/targets-$system.tsv
    wrk -t "$threads" -c "$clients" -d "${warmup}s" -s "$lua" "$base" >"$out/wrk-warmup-$system-$mode.txt"
    sleep 1
    before=$(snapshot)
    wrk -t "$threads" -c "$clients" -d "${duration}s" --latency -s "$lua" "$base" >"$log"
    after=$(snapshot)
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$log")
    n=$(awk '/ requests in / { print $1; exit }' "$log")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2; exit }' "$log")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$log")")
    if grep -qE 'Non-2xx|Socket errors' "$log"; then
        say "bench: $system $mode: $(grep -E 'Non-2xx|Socket errors' "$log" | tr -s ' ' | tr '\n' ';')"
        echo "$system $mode: $(grep -E 'Non-2xx|Socket errors' "$log" | tr '\n' ';')" >>"$out/problems.txt"
    fi
    awk -v s="$system" -v m="$mode" -v r="$rps" -v p50="$p50" -v p99="$p99" -v n="$n" -v hz="$hz" \
        -v a="$before" -v b="$after" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        tot = y[1] - x[1]; srv = y[2] - x[2]; pg = y[3] - x[3]; other = tot - srv - pg
        us = 1e6 / hz / (n > 0 ? n : 1)
        printf "%s %s %s %s %s %s %.0f %.0f %.0f %.0f %.0f\n", s, m, r, p50, p99, n, srv * us, pg * us, other * us, (y[4] - x[4]) * us, (y[5] - x[5]) * us
    }' >>"$out/results.txt"
    say "bench: $system $mode: $(tail -n 1 "$out/results.txt")"
}

# trace SYSTEM TENANT KEY CONVERSATION: one GET and one POST with every statement logged on
# every node (log_statement = all), to count what each request runs where; the statements
# are kept in $out/trace-SYSTEM-{get,post}-NODE.log and counted in $out/trace.txt.
trace() {
    local system=$1 tenant=$2 key=$3 conv=$4 mode n name sizes=() i
    local url=$base/v1/tenants/$tenant/conversations/$conv/messages
    for n in "${nodes[@]}"; do
        psql_on "$(sed -n 4p "$n/postmaster.pid")" postgres \
            -c "alter system set log_statement = 'all'" -c "select pg_reload_conf()" >/dev/null
    done
    sleep 1
    for mode in get post; do
        sizes=()
        for n in "${nodes[@]}"; do sizes+=("$(stat -c %s "$(dirname "$n")/postgresql.log")"); done
        if [[ $mode == get ]]; then
            curl -fsS -o /dev/null -H "Authorization: Bearer $key" "$url?limit=50"
        else
            curl -fsS -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
                -d '{"role":"user","content":"Trace this.","prompt_tokens":12,"completion_tokens":7,"model":"gpt-4o-mini","provider":"openai","cost_usd":"0.0004"}' "$url"
        fi
        sleep 0.5
        i=0
        for n in "${nodes[@]}"; do
            name=$(basename "$(dirname "$n")")
            tail -c +$((sizes[i] + 1)) "$(dirname "$n")/postgresql.log" >"$out/trace-$system-$mode-$name.log"
            # (not counted: the queries of Citus's distributed deadlock detector, which
            # polls every node on its own)
            echo "$system $mode $name: $(grep -E 'LOG:  (statement|execute)' "$out/trace-$system-$mode-$name.log" \
                | grep -vc 'waiting_pid') statements" >>"$out/trace.txt"
            i=$((i + 1))
        done
    done
    for n in "${nodes[@]}"; do
        psql_on "$(sed -n 4p "$n/postmaster.pid")" postgres \
            -c "alter system reset log_statement" -c "select pg_reload_conf()" >/dev/null
    done
}

run_system() {
    local system=$1 port p w1 w2 url
    say "bench: $system: starting the cluster(s)"
    if [[ $system == citus ]]; then
        start_node coordinator 1; port=$node_port
        start_node worker1 1; w1=$node_port
        start_node worker2 1; w2=$node_port
        for p in "$port" "$w1" "$w2"; do
            psql_on "$p" postgres -c "create database frontdesk template template0 encoding 'UTF8'"
            psql_on "$p" frontdesk -c "create extension citus"
        done
        psql_on "$port" frontdesk -c "select citus_set_coordinator_host('127.0.0.1', $port)" \
            -c "select citus_add_node('127.0.0.1', $w1)" -c "select citus_add_node('127.0.0.1', $w2)" >/dev/null
    else
        start_node single 0; port=$node_port
        psql_on "$port" postgres -c "create database frontdesk template template0 encoding 'UTF8'"
    fi
    # The roles, created in Frontdesk's database after the nodes were added (on Citus they
    # are then created on the workers too and known as distributed objects); trust on
    # loopback stands in for passwords.
    psql_on "$port" frontdesk >/dev/null <<'SQL'
do $$
begin
    if not exists (select from pg_roles where rolname = 'frontdesk_owner') then create role frontdesk_owner login; end if;
    if not exists (select from pg_roles where rolname = 'frontdesk_app') then create role frontdesk_app login; end if;
    if not exists (select from pg_roles where rolname = 'frontdesk_operator') then create role frontdesk_operator login bypassrls; end if;
    if not exists (select from pg_roles where rolname = 'frontdesk_user') then create role frontdesk_user nologin; end if;
    if not exists (select from pg_roles where rolname = 'frontdesk_service') then create role frontdesk_service nologin; end if;
    if not exists (select from pg_roles where rolname = 'frontdesk_callback') then create role frontdesk_callback nologin; end if;
    if not exists (select from pg_roles where rolname = 'frontdesk_authenticator') then create role frontdesk_authenticator nologin; end if;
end
$$;
grant connect, create, temporary on database frontdesk to frontdesk_owner;
grant connect on database frontdesk to frontdesk_app, frontdesk_operator;
SQL
    url="postgres://postgres@127.0.0.1:$port/frontdesk"
    say "bench: $system: migrate up"
    local t0=$SECONDS
    DATABASE_URL=$url FRONTDESK_LOG=warn "$bin" migrate up >"$out/migrate-$system.log" 2>&1 \
        || { cat "$out/migrate-$system.log" >&2; die "$system: migrate up failed"; }
    say "bench: $system: migrated in $((SECONDS - t0)) s; loading the dataset"
    t0=$SECONDS
    psql_on "$port" frontdesk -v tenants="$tenants" -v conversations="$conversations" -v messages="$messages" \
        -f "$root/bench/citus_dataset.sql" >"$out/dataset-$system.log" 2>&1 \
        || { tail -n 30 "$out/dataset-$system.log" >&2; die "$system: the dataset failed"; }
    say "bench: $system: dataset loaded in $((SECONDS - t0)) s"
    psql_on "$port" frontdesk -At -F $'\t' -c "
        select t.id, 'fd_cbench' || substr(t.slug, 8) || 'k' || md5('citus-bench-' || substr(t.slug, 8)), c.id
        from app.tenants t join app.conversations c on c.tenant_id = t.id
        where t.slug like 'cbench-%' order by 1, 3" >"$out/targets-$system.tsv"
    say "bench: $system: $(wc -l <"$out/targets-$system.tsv") conversations"

    local sport
    sport=$(free_port)
    base=http://127.0.0.1:$sport
    DATABASE_URL=$url FRONTDESK_LISTEN=127.0.0.1:$sport FRONTDESK_LOG=warn FRONTDESK_POOL_SIZE=8 \
        FRONTDESK_WEBHOOK_WORKER=false FRONTDESK_DATA_DIR=$dir/fd-$system \
        "$bin" serve >>"$out/server-$system.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        kill -0 "$server_pid" 2>/dev/null || { cat "$out/server-$system.log" >&2; die "$system: the server exited"; }
        curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break
        sleep 0.2
    done
    # One request of each kind by hand, to fail early with the server's answer.
    local tenant key conv code
    IFS=$'\t' read -r tenant key conv <"$out/targets-$system.tsv"
    code=$(curl -s -o "$out/probe-$system.json" -w '%{http_code}' -H "Authorization: Bearer $key" \
        "$base/v1/tenants/$tenant/conversations/$conv/messages?limit=50")
    [[ $code == 200 ]] || { cat "$out/probe-$system.json" >&2; die "$system: GET answered $code"; }
    say "bench: $system: serving on $base (probe GET 200); CPU busy before: $(cpu_busy)%"
    measure "$system" get
    measure "$system" post
    trace "$system" "$tenant" "$key" "$conv"
    stop_server
    grep -E 'WARN|ERROR|panicked' "$out/server-$system.log" | head -n 5 >&2 || true
    stop_nodes
}

for s in $systems; do run_system "$s"; done

# --- the report --------------------------------------------------------------------------
report() {
    local mode=$1 what
    [[ $mode == get ]] && what="GET last 50" || what="POST message"
    printf '\n%s, %s clients, %ss after %ss warm-up:\n\n' "$what" "$clients" "$duration" "$warmup"
    printf '| system | req/s | p50 | p99 | frontdesk µs CPU/req | PostgreSQL µs CPU/req | of which coordinator / workers | other µs/req |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
    awk -v m="$mode" '$2 == m { printf "| %s | %s | %s ms | %s ms | %s | %s | %s |  %s |\n", ($1 == "pg" ? "PostgreSQL" : "Citus"), $3, $4, $5, $7, $8, ($1 == "pg" ? "–" : $10 " / " $11), $9 }' "$out/results.txt"
    awk -v m="$mode" '$2 == m { for (i = 3; i <= 9; i++) v[$1, i] = $i }
        END { if (v["pg", 3] > 0) {
            printf "| Citus ÷ PG | %.2f | %.2f | %.2f | %.2f | %.2f | | |\n", v["citus", 3] / v["pg", 3], v["citus", 4] / v["pg", 4], v["citus", 5] / v["pg", 5], v["citus", 7] / v["pg", 7], v["citus", 8] / v["pg", 8] } }' "$out/results.txt"
}
if grep -q '^pg ' "$out/results.txt" && grep -q '^citus ' "$out/results.txt"; then
    report get
    report post
else
    cat "$out/results.txt"
fi
printf '\n(%s, %s CPUs, %s; dataset %s tenants × %s conversations × %s messages; pool 8; wrk -t %s -c %s; citus.shard_count %s)\n' \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$tenants" "$conversations" "$messages" "$threads" "$clients" "$shards"
[[ -s $out/trace.txt ]] && { printf '\nStatements logged per request (log_statement = all, one request each):\n\n'; sed 's/^/    /' "$out/trace.txt"; }
cp "$out/results.txt" "${CBENCH_RESULTS:-/dev/null}" 2>/dev/null || true
if [[ -s $out/problems.txt ]]; then
    say "bench: problems:"; sed 's/^/  /' "$out/problems.txt" >&2
    exit 1
fi
