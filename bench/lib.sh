# Shared by bench/run.sh and bench/messages.sh (sourced, not run): finding the tools,
# starting and stopping a throwaway `frontdesk serve`, reading wrk's and pgbench's results,
# and accounting for where the CPU time went.
#
# The sourcing script sets, before calling these functions:
#   bin    the frontdesk binary          data   the server's data directory (FRONTDESK_DATA_DIR)
#   out    a directory for logs          pool   FRONTDESK_POOL_SIZE
# and gets: pg_bindir, pgbench (bench_tools); port, base, server_pid (bench_start_server).
# shellcheck shell=bash

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------
bench_tools() {
    [[ -x $bin ]] || die "no server binary at $bin (cargo build --release -p frontdesk, or set FRONTDESK_BIN)"
    command -v wrk >/dev/null || die "wrk is not installed (Debian: apt-get install wrk)"
    command -v curl >/dev/null || die "curl is not installed"
    pg_bindir=""
    if command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/pgbench ]]; then
        pg_bindir=$(pg_config --bindir)
    else
        local dir
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
}

# --- the server --------------------------------------------------------------------------
# Start `frontdesk serve` on $data and a free loopback port; wait for /readyz.
bench_start_server() {
    local candidate ready=0
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
        FRONTDESK_POOL_SIZE=$pool "$bin" serve >>"$out/server.log" 2>&1 &
    server_pid=$!

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
}

# Stop the server (SIGTERM; it stops its embedded cluster) and check that nothing of $data's
# cluster is left; report warnings and errors from both logs. Returns 1 when something was
# left running.
bench_stop_server() {
    local status=0 pm problems pg_problems
    if [[ -n ${server_pid:-} ]] && kill -0 "$server_pid" 2>/dev/null; then
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
    server_pid=""
    if [[ -f $data/pg/postmaster.pid ]]; then
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
        problems=$(grep -E 'WARN|ERROR|panicked' "$out/server.log" || true)
        if [[ -n $problems ]]; then
            say "bench: the server logged warnings or errors ($(printf '%s\n' "$problems" | wc -l) lines), first ones:"
            printf '%s\n' "$problems" | head -n 20 >&2
        fi
    fi
    if [[ -f $data/run/postgresql.log ]]; then
        # (only what this run wrote: pg_log_from is the log's size before it, for a kept data dir)
        pg_problems=$(tail -c +$((${pg_log_from:-0} + 1)) "$data/run/postgresql.log" | grep -E 'ERROR|FATAL|PANIC' \
            | grep -v 'terminating connection due to administrator command' || true)
        if [[ -n $pg_problems ]]; then
            say "bench: PostgreSQL logged errors ($(printf '%s\n' "$pg_problems" | wc -l) lines), first ones:"
            printf '%s\n' "$pg_problems" | head -n 20 >&2
        fi
    fi
    return "$status"
}

# --- results -----------------------------------------------------------------------------
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

# --- the two loads -----------------------------------------------------------------------
# Both measure warmup seconds unrecorded, then duration seconds, and print
# "rate p50 p99 n gen srv pg other other%" (the last five from cpu_split). They read the
# callers' $out, $threads, $warmup, $duration (and $base, $lua for wrk; $pgb for pgbench).
# Run them as `< <(run_… …)`: the CPU of the load generator is that subshell's children.

# run_wrk NAME CLIENTS: the API through wrk.
run_wrk() {
    local name=$1 clients=$2 me=$BASHPID before after rps n p50 p99
    local log=$out/wrk-$name-$clients.txt
    wrk -t "$threads" -c "$clients" -d "${warmup}s" -s "$lua" "$base" >"$out/wrk-warmup-$name-$clients.txt"
    before=$(snapshot "$me")
    wrk -t "$threads" -c "$clients" -d "${duration}s" --latency -s "$lua" "$base" >"$log"
    after=$(snapshot "$me")
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$log")
    n=$(awk '/ requests in / { print $1; exit }' "$log")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2; exit }' "$log")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$log")")
    if grep -qE 'Non-2xx|Socket errors' "$log"; then
        echo "wrk ($name) at $clients clients: $(grep -E 'Non-2xx|Socket errors' "$log" | tr -s ' ' | tr '\n' ';')" \
            >>"$out/problems.txt"
    fi
    echo "$rps $p50 $p99 $n $(cpu_split "$n" "$before" "$after")"
}

# run_pgbench NAME SCRIPT CLIENTS: the bare SQL through pgbench, percentiles from its
# per-transaction log.
run_pgbench() {
    local name=$1 script=$2 clients=$3 me=$BASHPID tps p50 p99 n failed before after
    local log=$out/pgbench-$name-$clients.txt
    "${pgb[@]}" -f "$script" -c "$clients" -j "$threads" -T "$warmup" frontdesk \
        >"$out/pgbench-warmup-$name-$clients.txt" 2>&1
    rm -f "$out/pgblog-$name-$clients".*
    sleep 0.5 # let the warmup's backends exit
    before=$(snapshot "$me")
    "${pgb[@]}" -f "$script" -c "$clients" -j "$threads" -T "$duration" \
        -l --log-prefix="$out/pgblog-$name-$clients" frontdesk >"$log" 2>&1
    sleep 0.5
    after=$(snapshot "$me")
    tps=$(awk '/^tps = / { printf "%.0f", $3; exit }' "$log")
    n=$(awk '/^number of transactions actually processed:/ { split($NF, a, "/"); print a[1] }' "$log")
    read -r p50 p99 < <(pgbench_percentiles "$out/pgblog-$name-$clients".*)
    failed=$(awk -F': ' '/^number of failed transactions/ { split($2, a, " "); print a[1] }' "$log")
    if [[ -n $failed && $failed != 0 ]]; then
        echo "pgbench ($name) at $clients clients: $failed failed transactions" >>"$out/problems.txt"
    fi
    echo "$tps $p50 $p99 $n $(cpu_split "$n" "$before" "$after")"
}

# --- CPU accounting ----------------------------------------------------------------------
# In clock ticks summed over all cores. The load generators, the server and PostgreSQL
# share the machine's cores, so each measured load also reports where its CPU went per
# request, and how much went to anything else (another job on the machine makes the
# numbers meaningless; softirq work for loopback traffic is counted there too).
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

# Wait until the CPUs are idle (at most 10 % busy over two seconds), for at most $1 seconds;
# prints the last measurement. Another job on a small machine (a test run, a build) makes
# the numbers meaningless, and on a shared machine it is often over within minutes.
wait_idle() {
    local limit=$1 started=$SECONDS busy
    busy=$(cpu_busy)
    while ((busy > 10 && SECONDS - started < limit)); do
        sleep 3
        busy=$(cpu_busy)
    done
    echo "$busy"
}
