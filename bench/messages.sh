#!/usr/bin/env bash
# The message and usage benchmarks on a generated dataset (by default 100 tenants, 10,000
# conversations, 1,000,000 messages with their daily rollups; bench/messages_dataset.sql):
#   get          GET a conversation's last 50 messages        (bench/messages_get.sql)
#   post         POST a message                                (bench/messages_post.sql)
#   providers    GET the 30-day provider analytics             (bench/analytics_providers.sql)
#   today        GET today's usage                             (bench/usage_today.sql)
#   post_limits  POST a message with all three limits set on every tenant (high enough never
#                to refuse), to compare with `post`: the cost of enforcing limits
#   post_webhooks  POST a message with a webhook endpoint for message.created on every
#                tenant, to compare with `post`: the cost of queueing a delivery per
#                event (the server's delivery worker is off in these benchmarks, so the
#                deliveries stay queued and only the writing is measured)
# each measured two ways against the same database in one run: through the API with wrk
# (bench/messages.lua), and as the bare SQL transaction with pgbench. Every request and
# every pgbench transaction goes to a random conversation (or its tenant) of a random
# tenant, with that tenant's API key. Prints Markdown tables: req/s, p50 and p99 of both,
# API ÷ pgbench, and the CPU time per request. See bench/README.md.
#
# Generating the dataset takes minutes; give BENCH_DATA a directory to keep it and the
# next run reuses it (each run adds the messages it POSTs).
#
# Knobs (environment):
#   FRONTDESK_BIN        server binary (default: $CARGO_TARGET_DIR or target, /release/frontdesk)
#   FRONTDESK_POOL_SIZE  the server's request pool (default 8, as bench/run.sh)
#   BENCH_DATA           data directory to keep and reuse (server, cluster and dataset);
#                        default: a temporary one, deleted at the end. Must be reachable by
#                        the postgres user when run as root (e.g. under /tmp).
#   BENCH_LOADS          which loads, in order (default "get post providers today post_limits post_webhooks")
#   BENCH_CLIENTS        client counts, space separated (default "32")
#   BENCH_DURATION       seconds measured per load and client count (default 20)
#   BENCH_WARMUP         seconds of unmeasured load before each measurement (default 5)
#   BENCH_THREADS        wrk threads and pgbench -j (default 2)
#   PGBENCH_MODE         pgbench query mode: prepared or extended (default prepared)
#   BENCH_TENANTS, BENCH_CONVERSATIONS, BENCH_MESSAGES
#                        dataset size when it is generated: tenants, conversations per
#                        tenant, messages per conversation (default 100 each)
#   BENCH_IDLE_WAIT      before each load, wait up to this many seconds for the CPUs to be
#                        idle (default 0: do not wait; the report warns when they were busy)
#   BENCH_KEEP=1         keep the logs (and the data, when it is temporary) and print the path
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${FRONTDESK_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/frontdesk}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
pool=${FRONTDESK_POOL_SIZE:-8}
loads=${BENCH_LOADS:-"get post providers today post_limits post_webhooks"}
clients_list=${BENCH_CLIENTS:-"32"}
duration=${BENCH_DURATION:-20}
warmup=${BENCH_WARMUP:-5}
max_threads=${BENCH_THREADS:-2}
threads=$max_threads
pgbench_mode=${PGBENCH_MODE:-prepared}
want_tenants=${BENCH_TENANTS:-100}
want_conversations=${BENCH_CONVERSATIONS:-100}
want_messages=${BENCH_MESSAGES:-100}
idle_wait=${BENCH_IDLE_WAIT:-0}
lua=$root/bench/messages.lua
contents=$root/bench/messages_contents.txt

. "$root/bench/lib.sh"
bench_tools
psql=${pg_bindir:+$pg_bindir/}psql
command -v "$psql" >/dev/null || die "psql not found (Debian: apt-get install postgresql-client)"
# The pgbench template of each load.
template() {
    case $1 in
        get) echo messages_get.sql ;;
        post | post_limits | post_webhooks) echo messages_post.sql ;;
        providers) echo analytics_providers.sql ;;
        today) echo usage_today.sql ;;
    esac
}
for load in $loads; do
    [[ -n $(template "$load") ]] || die "BENCH_LOADS: unknown load $load (get, post, providers, today, post_limits, post_webhooks)"
done

# --- directories -------------------------------------------------------------------------
# Logs always go to a temporary directory. The data directory is either BENCH_DATA (kept)
# or inside the temporary one. Both world-traversable: as root, PostgreSQL runs as the
# postgres user, which must reach pg/ and run/ inside the data directory.
tmp=$(mktemp -d /tmp/fdbench-messages.XXXXXX)
chmod 755 "$tmp"
out=$tmp/out
mkdir -p "$out/pgbench"
if [[ -n ${BENCH_DATA:-} ]]; then
    mkdir -p "$BENCH_DATA"
    data=$(cd "$BENCH_DATA" && pwd)
else
    data=$tmp/data
    mkdir -p "$data"
fi
chmod 755 "$data"
# What the setup leaves for later runs: the targets (with the API keys' secrets: a
# throwaway dataset's keys, readable by this user only) and how the dataset was made.
state=$data/bench
server_pid=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    bench_stop_server || status=1
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        say "bench: kept the logs in $out"
    else
        rm -rf "$out"
    fi
    if [[ $data == "$tmp/data" && ${BENCH_KEEP:-0} != 1 ]]; then
        rm -rf "$tmp"
    else
        rmdir "$tmp" 2>/dev/null || true
        if [[ -f $state/targets.tsv ]]; then
            say "bench: the dataset is kept in $data (BENCH_DATA=$data to reuse it)"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the server --------------------------------------------------------------------------
# (PostgreSQL's log is kept with a kept data dir: look only at what this run adds to it)
pg_log_from=$(stat -c %s "$data/run/postgresql.log" 2>/dev/null || echo 0)
# No webhook delivery in these loads (post_webhooks measures the writing of deliveries).
export FRONTDESK_WEBHOOK_WORKER=false
bench_start_server
su_psql=("$psql" -X -q -A -t -h "$data/run" -U postgres -d frontdesk -v ON_ERROR_STOP=1)

# --- the dataset -------------------------------------------------------------------------
if [[ -f $state/targets.tsv ]]; then
    say "bench: reusing the dataset in $data ($(cat "$state/generated.txt"))"
else
    if [[ -n $("${su_psql[@]}" -c "select 1 from pg_namespace where nspname = 'bench'") ]]; then
        die "$data has a bench schema but no $state/targets.tsv (an interrupted setup?); use a new BENCH_DATA"
    fi
    mkdir -p "$state"
    chmod 700 "$state"
    say "bench: generating $want_tenants tenants × $want_conversations conversations × $want_messages messages (takes minutes)"
    started=$(date +%s.%N)
    "$psql" -X -h "$data/run" -U postgres -d frontdesk -v ON_ERROR_STOP=1 \
        -v tenants="$want_tenants" -v conversations="$want_conversations" -v messages="$want_messages" \
        -f "$root/bench/messages_dataset.sql" >"$out/generate.log" 2>&1 \
        || { tail -n 30 "$out/generate.log" >&2; die "generating the dataset failed"; }
    generated=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    cp "$out/generate.log" "$state/generate.log"

    # One API key per tenant, made through the API by the tenant's owner.
    say "bench: creating one API key per tenant"
    : >"$state/keys.tsv.partial"
    while IFS=$'\t' read -r tenant_n tenant owner; do
        token=$(FRONTDESK_DATA_DIR=$data "$bin" token --sub "$owner" --ttl 10m)
        created=$(curl -fsS -X POST "$base/v1/tenants/$tenant/api-keys" \
            -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d '{"name":"bench","scopes":["full"]}') || die "creating the API key of tenant $tenant failed"
        key_id=$(printf '%s' "$created" | grep -oE '"id" *: *"[0-9a-f-]{36}"' | head -n 1 | grep -oE '[0-9a-f-]{36}' || true)
        secret=$(printf '%s' "$created" | grep -oE '"secret" *: *"fd_[A-Za-z0-9_-]+"' | grep -oE 'fd_[A-Za-z0-9_-]+' || true)
        [[ -n $key_id && -n $secret ]] || die "no key in the response: $created"
        printf '%s\t%s\t%s\t%s\n' "$tenant_n" "$tenant" "$key_id" "$secret" >>"$state/keys.tsv.partial"
    done < <("${su_psql[@]}" -F $'\t' -c "select tenant_n, tenant_id, owner_id from bench.tenants order by tenant_n")
    mv "$state/keys.tsv.partial" "$state/keys.tsv"

    # The wrk targets: every conversation with its tenant's key. Written last: its presence
    # marks a finished setup.
    "${su_psql[@]}" -F $'\t' -c "select n, tenant_n, tenant_id, conversation_id from bench.targets order by n" \
        | awk -F '\t' -v OFS='\t' 'NR == FNR { secret[$1] = $4; next } { print $2, $3, secret[$2], $4 }' \
            "$state/keys.tsv" - >"$state/targets.tsv.partial"
    mv "$state/targets.tsv.partial" "$state/targets.tsv"
    printf '%s tenants × %s conversations × %s messages, generated in %s s on %s (%s CPUs)\n' \
        "$want_tenants" "$want_conversations" "$want_messages" "$generated" "$(date -u +%Y-%m-%d)" "$(nproc)" \
        >"$state/generated.txt"
    say "bench: dataset generated in ${generated}s"
fi

# The dataset as it is now (each run adds the messages it POSTs).
IFS='|' read -r n_tenants n_conversations n_messages n_events db_size < <("${su_psql[@]}" -F '|' -c \
    "select (select count(*) from bench.tenants), (select count(*) from app.conversations),
            (select count(*) from app.messages), (select count(*) from app.events),
            pg_size_pretty(pg_database_size('frontdesk'))")
per_tenant=$((n_conversations / n_tenants))
say "bench: $n_tenants tenants, $n_conversations conversations, $n_messages messages, $n_events events, database $db_size"

# --- checks through the API ---------------------------------------------------------------
IFS=$'\t' read -r _ c_tenant c_secret c_conversation < <(head -n 1 "$state/targets.tsv")
code=$(curl -sS -o "$out/get.json" -w '%{http_code}' -H "Authorization: Bearer $c_secret" \
    "$base/v1/tenants/$c_tenant/conversations/$c_conversation/messages?limit=50")
[[ $code == 200 ]] || die "GET …/messages answered $code: $(head -c 500 "$out/get.json")"
got=$(grep -o '"conversation_id":' "$out/get.json" | wc -l)
[[ $got == 50 ]] || die "GET …/messages?limit=50 returned $got messages, not 50"

# --- the pgbench scripts -----------------------------------------------------------------
# One script per load. Each transaction picks a random conversation n (so transactions are
# spread evenly over all conversations, as wrk's requests are) and its tenant t = n /
# conversations per tenant; a binary tree of \if's over t chooses the copy of the server's
# context statement that binds that tenant's variables, tenant_<t> and key_<t> (see
# messages_get.sql).
tenant_ids=()
key_ids=()
while IFS=$'\t' read -r tenant_n tenant key_id _; do
    tenant_ids[tenant_n]=$tenant
    key_ids[tenant_n]=$key_id
done <"$state/keys.tsv"
((${#tenant_ids[@]} == n_tenants)) || die "$state/keys.tsv has ${#tenant_ids[@]} tenants, the database $n_tenants"
# The postgres form of crates/frontdesk-pg/src/tx.rs (PRINCIPAL_CONTEXT), for tenant $1.
context_statement() {
    printf "select set_config('frontdesk.caller_kind', :caller_kind, true), set_config('frontdesk.tenant_id', :tenant_%d, true), set_config('frontdesk.user_id', :user_id, true), set_config('frontdesk.member_role', :member_role, true), set_config('frontdesk.key_id', :key_%d, true), set_config('frontdesk.key_scope', :key_scope, true), set_config('frontdesk.tenant_version', :tenant_version, true), app.assert_principal();\n" "$1" "$1"
}
tenant_tree() { # lo hi: the tenants lo..hi
    local lo=$1 hi=$2 mid
    if ((lo == hi)); then
        context_statement "$lo"
    else
        mid=$(((lo + hi) / 2))
        printf '\\if :t <= %d\n' "$mid"
        tenant_tree "$lo" "$mid"
        printf '\\else\n'
        tenant_tree $((mid + 1)) "$hi"
        printf '\\endif\n'
    fi
}
tenant_tree 0 $((n_tenants - 1)) >"$out/pgbench/tenants.sql"
for load in $loads; do
    # (pgbench's -D refuses empty values: each connection reads the empty user_id and
    # member_role once, before its first transaction)
    awk -v tree="$out/pgbench/tenants.sql" '
        $0 == "\\startpipeline" {
            print "\\if :empties = 0"
            print "select \x27\x27 as user_id, \x27\x27 as member_role \\gset"
            print "\\set empties 1"
            print "\\endif" }
        $0 == "@CONTEXT@" { while ((getline line < tree) > 0) print line; next }
        { print }' "$root/bench/$(template "$load")" >"$out/pgbench/$load.sql"
done

# The POST contents, for the pgbench script to read by number (wrk reads the file).
n_contents=$(grep -c . "$contents")
grep . "$contents" | awk '
    BEGIN { print "set client_min_messages = warning;"
            print "create table if not exists bench.contents (i integer primary key, content text not null);"
            print "grant select on bench.contents to frontdesk_app;"
            print "begin; truncate bench.contents;" }
    { printf "insert into bench.contents values (%d, $content$%s$content$);\n", NR - 1, $0 }
    END { print "commit;" }' | "${su_psql[@]}" >/dev/null

# (pgbench's -d is --debug: the database name is its last, positional argument.)
# pgbench logs in as frontdesk_app, the server's request login; the context's values are
# what the server binds for a full-scope API key (empty for absent ones), per tenant.
pgb=("$pgbench" -n -h "$data/run" -U frontdesk_app -M "$pgbench_mode"
    -D "targets=$n_conversations" -D "conversations=$per_tenant" -D "contents=$n_contents"
    -D role=user -D prompt_tokens=12 -D completion_tokens=7 -D model=gpt-4o-mini
    -D provider=openai -D cost_usd=0.0004 -D 'metadata={}'
    -D caller_kind=key -D key_scope=full -D tenant_version=0 -D empties=0)
for tenant_n in "${!tenant_ids[@]}"; do
    pgb+=(-D "tenant_$tenant_n=${tenant_ids[tenant_n]}" -D "key_$tenant_n=${key_ids[tenant_n]}")
done
# A short check of each script. A wrong tenant for a conversation would make the POST fail
# (its trigger finds no conversation it may write to) and the GET read nothing, so the GET
# check also counts the message rows its transactions fetched through the index.
fetched() {
    sleep 1 # the backends report their statistics as they exit
    "${su_psql[@]}" -c "select idx_tup_fetch from pg_stat_user_tables where relid = 'app.messages'::regclass"
}
for load in $loads; do
    before=$(fetched)
    "${pgb[@]}" -f "$out/pgbench/$load.sql" -c 1 -j 1 -t 100 frontdesk >"$out/pgbench-check-$load.txt" 2>&1 \
        || { tail -n 20 "$out/pgbench-check-$load.txt" >&2; die "pgbench cannot run $out/pgbench/$load.sql"; }
    if [[ $load == get ]]; then
        got=$(($(fetched) - before))
        ((got >= 100 * 40)) || die "100 GET transactions of pgbench fetched only $got messages"
    fi
done

# --- the runs ----------------------------------------------------------------------------
# Before each load: vacuum what the previous loads wrote and checkpoint, so that every load
# starts from the same state and no autovacuum of an earlier load runs during it.
settle() {
    "${su_psql[@]}" -c "vacuum (analyze) app.conversations, app.messages, app.events, app.usage_daily, app.limit_state" >/dev/null
    "${su_psql[@]}" -c "checkpoint" >/dev/null
}

# post_limits: every tenant gets all three limits, far above what a run can use (so
# nothing is refused and every write is charged), and loses them afterwards. Set as the
# superuser; the server reads the tenant's limits in the message trigger, so no restart.
limits_on() {
    "${su_psql[@]}" -c "update app.tenants set rate_limit_per_minute = 100000000,
        daily_token_limit = 1000000000000, monthly_budget_usd = 10000000" >/dev/null
}
limits_off() {
    "${su_psql[@]}" -c "update app.tenants set rate_limit_per_minute = null, daily_token_limit = null,
        monthly_budget_usd = null" >/dev/null
}
# post_webhooks: one endpoint per tenant (an address nothing listens on: no worker runs).
webhooks_on() {
    "${su_psql[@]}" -c "insert into app.webhook_endpoints (tenant_id, id, url, event_types, secret)
        select id, gen_random_uuid(), 'http://127.0.0.1:9/bench', '{message.created}',
               'whsec_' || translate(encode(decode(md5(random()::text) || md5(random()::text), 'hex'), 'base64'), E'\\n', '')
        from app.tenants" >/dev/null
}
webhooks_off() {
    "${su_psql[@]}" -c "delete from app.webhook_endpoints" >/dev/null
}
trap 'limits_off 2>/dev/null; webhooks_off 2>/dev/null; cleanup' EXIT


export BENCH_TARGETS=$state/targets.tsv BENCH_CONTENTS=$contents
rows=()
declare -A api_rps_of pg_tps_of
cpu_rows=()
verdicts=()
: >"$out/problems.txt"
busy_max=0
other_max=0
for clients in $clients_list; do
    # (wrk and pgbench want no more threads than connections)
    threads=$((clients < max_threads ? clients : max_threads))
    for load in $loads; do
        case $load in
            get) what="GET last 50" ;;
            post) what="POST message" ;;
            providers) what="GET providers 30 days" ;;
            today) what="GET usage today" ;;
            post_limits) what="POST message, limits set" ;;
            post_webhooks) what="POST message, endpoint set" ;;
        esac
        [[ $load == post_limits ]] && limits_on
        [[ $load == post_webhooks ]] && webhooks_on
        settle
        busy=$(wait_idle "$idle_wait")
        ((busy > busy_max)) && busy_max=$busy
        say "bench: $what, $clients clients: CPU ${busy}% busy before the loads"

        say "bench: $what, $clients clients: API (wrk ${warmup}s warmup + ${duration}s)"
        export BENCH_MODE=${load%_*}
        read -r api_rps api_p50 api_p99 _ a_gen a_srv a_pg a_other a_pct < <(run_wrk "$load" "$clients")

        settle
        busy=$(wait_idle "$idle_wait")
        ((busy > busy_max)) && busy_max=$busy
        say "bench: $what, $clients clients: pgbench -M $pgbench_mode (${warmup}s warmup + ${duration}s; CPU ${busy}% busy before)"
        read -r pg_tps pg_p50 pg_p99 _ p_gen _ p_pg p_other p_pct < <(run_pgbench "$load" "$out/pgbench/$load.sql" "$clients")
        [[ $load == post_limits ]] && limits_off
        [[ $load == post_webhooks ]] && webhooks_off
        api_rps_of[$load-$clients]=$api_rps
        pg_tps_of[$load-$clients]=$pg_tps

        for pct in "$a_pct" "$p_pct"; do ((pct > other_max)) && other_max=$pct; done
        r=$(ratio "$api_rps" "$pg_tps")
        rows+=("| $what | $clients | $api_rps | $api_p50 ms | $api_p99 ms | $pg_tps | $pg_p50 ms | $pg_p99 ms | $r |")
        cpu_rows+=("| $what | $clients | API (wrk) | $a_gen | $a_srv | $a_pg | $a_other ($a_pct%) | $((a_gen + a_srv + a_pg + a_other)) |")
        cpu_rows+=("| $what | $clients | pgbench | $p_gen | – | $p_pg | $p_other ($p_pct%) | $((p_gen + p_pg + p_other)) |")
        met=$(awk -v r="$r" 'BEGIN { print (r + 0 >= 0.85) ? "met" : "NOT met" }')
        verdicts+=("$what, $clients clients: API ÷ pgbench = $r (≥ 0.85: $met)")
        case $load in
            get) p99_target=10 ;;
            providers | today) p99_target=20 ;;
            *) p99_target="" ;;
        esac
        if [[ -n $p99_target ]]; then
            met=$(awk -v p="$api_p99" -v t="$p99_target" 'BEGIN { print (p + 0 < t) ? "met" : "NOT met" }')
            verdicts+=("$what, $clients clients: API p99 = $api_p99 ms (< $p99_target ms: $met)")
        fi
        if [[ $load == post_limits && -n ${api_rps_of[post-$clients]:-} ]]; then
            r=$(ratio "$api_rps" "${api_rps_of[post-$clients]}")
            met=$(awk -v r="$r" 'BEGIN { print (r + 0 >= 0.90) ? "met" : "NOT met" }')
            verdicts+=("limits, $clients clients: API req/s with ÷ without = $r (≥ 0.90: $met); pgbench $(ratio "$pg_tps" "${pg_tps_of[post-$clients]}")")
        fi
        if [[ $load == post_webhooks && -n ${api_rps_of[post-$clients]:-} ]]; then
            verdicts+=("webhook endpoint, $clients clients: API req/s with ÷ without = $(ratio "$api_rps" "${api_rps_of[post-$clients]}"); pgbench $(ratio "$pg_tps" "${pg_tps_of[post-$clients]}")")
        fi
    done
done

# --- the report --------------------------------------------------------------------------
printf '\n'
printf '| request | clients | API req/s | API p50 | API p99 | pgbench tps | pgbench p50 | pgbench p99 | API ÷ pgbench |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${rows[@]}"
printf '\nCPU per request in µs, all cores (other: softirq and anything else on the machine):\n\n'
printf '| request | clients | load | generator | frontdesk | PostgreSQL | other | total |\n'
printf '|---|---:|---|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${cpu_rows[@]}"
printf '\nTargets:\n'
printf -- '- %s\n' "${verdicts[@]}"
printf '\n(%s, %s CPUs, pool %s, %ss per load after %ss warmup, wrk -t %s, pgbench -M %s -j %s; dataset %s; %s messages before the runs; CPU busy before loads: at most %s%%)\n' \
    "$(date -u +%Y-%m-%d)" "$(nproc)" "$pool" "$duration" "$warmup" "$threads" "$pgbench_mode" "$threads" \
    "$(cat "$state/generated.txt")" "$n_messages" "$busy_max"
if ((busy_max > 10 || other_max > 15)); then
    say "bench: WARNING: other work shared the CPUs (busy before a load: ${busy_max}%, other during a load: up to ${other_max}%); these numbers are not reliable"
fi
if [[ -s $out/problems.txt ]]; then
    say "bench: problems during the runs:"
    sed 's/^/  /' "$out/problems.txt" >&2
    exit 1
fi
