#!/usr/bin/env bash
# Webhook delivery throughput: how many events per second `frontdesk worker` delivers to a
# fast receiver on loopback (bench/webhook_receiver.py), for 1 endpoint (deliveries to one
# endpoint are sent one at a time, in order) and for several endpoints at once. The events
# are written in bulk first (the fan-out trigger queues one delivery per endpoint and
# event), then one worker process drains the queue; the rate is measured from the first
# delivery to the last. Prints a Markdown table. See bench/README.md.
#
# Knobs (environment):
#   FRONTDESK_BIN     server binary (default: target/release/frontdesk)
#   BENCH_EVENTS      events written per run (default 5000)
#   BENCH_ENDPOINTS   endpoint counts, space separated (default "1 10")
#   BENCH_KEEP=1      keep the logs and data and print the path
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${FRONTDESK_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/frontdesk}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
pool=8
events=${BENCH_EVENTS:-5000}
endpoints_list=${BENCH_ENDPOINTS:-"1 10"}

. "$root/bench/lib.sh"
bench_tools
psql=${pg_bindir:+$pg_bindir/}psql
command -v python3 >/dev/null || die "python3 is needed for the receiver"

tmp=$(mktemp -d /tmp/fdbench-webhooks.XXXXXX)
chmod 755 "$tmp"
out=$tmp/out
data=$tmp/data
mkdir -p "$out" "$data"
chmod 755 "$data"
server_pid=""
receiver_pid=""
worker_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [[ -n $worker_pid ]] && kill -TERM "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null
    [[ -n $receiver_pid ]] && kill "$receiver_pid" 2>/dev/null
    bench_stop_server || status=1
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then say "bench: kept $tmp"; else rm -rf "$tmp"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The server only serves the API here: the measured worker is a process of its own.
export FRONTDESK_WEBHOOK_WORKER=false FRONTDESK_WEBHOOK_ALLOW_PRIVATE=true
bench_start_server
su_psql=("$psql" -X -q -A -t -h "$data/run" -U postgres -d frontdesk -v ON_ERROR_STOP=1)

receiver_port=$((20000 + RANDOM % 40000))
python3 "$root/bench/webhook_receiver.py" "$receiver_port" >"$out/receiver.log" 2>&1 &
receiver_pid=$!
receiver=http://127.0.0.1:$receiver_port
for _ in $(seq 1 50); do curl -fsS -o /dev/null "$receiver/count" 2>/dev/null && break; sleep 0.1; done
received() { curl -fsS "$receiver/count"; }

owner=$(cat /proc/sys/kernel/random/uuid)
token=$(FRONTDESK_DATA_DIR=$data "$bin" token --sub "$owner" --ttl 30m)
api() { curl -fsS -X "$1" "$base$2" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
tenant=$(api POST /v1/tenants '{"slug":"bench-hooks","name":"Bench hooks"}' | grep -oE '"id" *: *"[0-9a-f-]{36}"' | head -n 1 | grep -oE '[0-9a-f-]{36}')

rows=()
for n in $endpoints_list; do
    "${su_psql[@]}" -c "delete from app.webhook_endpoints where tenant_id = '$tenant'"
    for i in $(seq 1 "$n"); do
        api POST /v1/tenants/bench-hooks/webhook-endpoints \
            "{\"url\":\"$receiver/hook/$i\",\"event_types\":[\"bench.event\"]}" >/dev/null
    done
    # The events, in the tenant's context (the fan-out trigger queues a delivery per
    # endpoint), with a payload like a message.created event's.
    "${su_psql[@]}" -c "begin; set local frontdesk.caller_kind = 'operator'; set local frontdesk.tenant_id = '$tenant';
        insert into app.events (tenant_id, id, type, subject_id, data)
        select '$tenant', app.uuid_v7(), 'bench.event', gen_random_uuid(),
               jsonb_build_object('id', gen_random_uuid(), 'conversation_id', gen_random_uuid(),
                                  'role', 'assistant', 'content_length', 120, 'prompt_tokens', 300,
                                  'completion_tokens', 40, 'model', 'gpt-4o-mini', 'provider', 'openai',
                                  'cost_usd', '0.000069', 'created_at', now())
        from generate_series(1, $events); commit;"
    "${su_psql[@]}" -c "vacuum (analyze) app.webhook_queue, app.webhook_deliveries, app.events" >/dev/null
    "${su_psql[@]}" -c "checkpoint" >/dev/null
    queued=$("${su_psql[@]}" -c "select count(*) from app.webhook_queue where tenant_id = '$tenant'")
    say "bench: $n endpoint(s): $queued deliveries queued; starting a worker"
    before=$(received)
    FRONTDESK_DATA_DIR=$data FRONTDESK_LOG=warn "$bin" worker >>"$out/worker.log" 2>&1 &
    worker_pid=$!
    while (($(received) == before)); do sleep 0.01; done
    t0=$(date +%s.%N)
    c0=$(received)
    while (($("${su_psql[@]}" -c "select count(*) from app.webhook_queue where tenant_id = '$tenant'") > 0)); do
        sleep 0.05
    done
    t1=$(date +%s.%N)
    c1=$(received)
    kill -TERM "$worker_pid"
    wait "$worker_pid" || true
    worker_pid=""
    failed=$("${su_psql[@]}" -c "select count(*) from app.webhook_deliveries where tenant_id = '$tenant' and status <> 'delivered'")
    rate=$(awk -v a="$t0" -v b="$t1" -v n=$((c1 - c0)) 'BEGIN { printf "%.0f", n / (b - a) }')
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    rows+=("| $n | $queued | $((c1 - before)) | $failed | $secs s | $rate |")
done

printf '\n| endpoints | deliveries | received | not delivered | drained in | deliveries/s |\n'
printf '|---:|---:|---:|---:|---:|---:|\n'
printf '%s\n' "${rows[@]}"
printf '\n(%s, %s CPUs; one `frontdesk worker` (batch 32), the server (worker off), PostgreSQL and the receiver share the CPUs)\n' \
    "$(date -u +%Y-%m-%d)" "$(nproc)"
