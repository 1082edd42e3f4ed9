#!/usr/bin/env bash
# The end-to-end harness of DESIGN section 7 (see docs/benchmarks.md). One command:
#
#   bench/harness/run.sh
#
# On free loopback ports it starts a fast upstream, a plain YARP forwarder to it (the baseline)
# and Keyway (SQLite in a temporary directory), and drives them with wrk:
#
#   main     the upstream directly (the physical limit), YARP, Keyway's proxy with a static bearer
#            token (resolved-resource cache), the same resource with per-request audit events
#            (traffic: each) and Keyway's proxy with an OAuth 2.0 client-credentials token (credential
#            engine cache), at each concurrency, alternating A B A B; throughput with its spread
#            across rounds, p50/p99, CPU time per request of the proxy process, the ratios of the
#            bars (medians of the rounds), and peak RSS
#   stream   a 10 MB answer through a resource that sends a secret (so the answer is redacted) and
#            through one that sends none: CPU per MB of each, and the resident memory before and after
#   api      POST /api/v1/resources/{name}/run and a saved query with templates (member paths, and
#            one with a script expression), alternating with YARP
#   storm    1,000 connections at once on a credential nobody holds yet: token requests counted by
#            the upstream's token endpoint; then the same on 3 replicas sharing one PostgreSQL
#            (when PostgreSQL's initdb is installed)
#   scale    throughput and memory against resources (10 -> 10,000), stored credentials
#            (100 -> 100,000; with start-to-ready time) and connections
#
# Environment: SECTIONS (default "main stream api storm scale"), DURATION (wrk seconds per run, default
# 8), CONCURRENCY (default "1 32 128 1024"), ROUNDS (default 5), STREAM_MB (default 10), API_CONCURRENCY (default 32),
# RESOURCE_COUNTS (default "10 1000 10000"), CREDENTIAL_COUNTS (default "100 10000 100000"),
# CONNECTION_COUNTS (default "32 128 512 1024"), LATENCY_ROUNDS and LATENCY_DURATION (the short
# c=1 rounds the added-latency bar is read from, default 12 of 2 s), KEYWAY_ENV (extra VAR=value
# settings for the Keyway processes only, e.g. "DOTNET_gcServer=1" to compare GC modes),
# PROXY_CPUS and LOAD_CPUS (taskset CPU lists: Keyway and YARP on the first, wrk and the upstream on
# the second, e.g. PROXY_CPUS=0-1 LOAD_CPUS=2-5 on a machine with six; default: unpinned, all of them
# share every CPU). Not part of CI.
set -euo pipefail

SECTIONS="${SECTIONS:-main stream api storm scale}"
DURATION="${DURATION:-8}"
CONCURRENCY="${CONCURRENCY:-1 32 128 1024}"
ROUNDS="${ROUNDS:-5}"
STREAM_MB="${STREAM_MB:-10}"
API_CONCURRENCY="${API_CONCURRENCY:-32}"
RESOURCE_COUNTS="${RESOURCE_COUNTS:-10 1000 10000}"
CREDENTIAL_COUNTS="${CREDENTIAL_COUNTS:-100 10000 100000}"
CONNECTION_COUNTS="${CONNECTION_COUNTS:-32 128 512 1024}"
LATENCY_ROUNDS="${LATENCY_ROUNDS:-12}"
LATENCY_DURATION="${LATENCY_DURATION:-2}"
read -r -a KEYWAY_ENV_ARGS <<<"${KEYWAY_ENV:-}"
# Which CPUs the proxies (Keyway, YARP) and the load (wrk, the upstream) may run on: prefixes for
# their command lines, empty when unpinned.
PROXY_ON=()
LOAD_ON=()
for pinning in "PROXY_ON:${PROXY_CPUS:-}" "LOAD_ON:${LOAD_CPUS:-}"; do
    cpus="${pinning#*:}"
    [ -z "$cpus" ] && continue
    if ! command -v taskset >/dev/null || ! taskset -c "$cpus" true 2>/dev/null; then
        echo "PROXY_CPUS and LOAD_CPUS take CPU lists that taskset accepts on this machine (0-$(( $(nproc) - 1 ))); '$cpus' is not one." >&2
        exit 2
    fi
    if [ "${pinning%%:*}" = PROXY_ON ]; then PROXY_ON=(taskset -c "$cpus"); else LOAD_ON=(taskset -c "$cpus"); fi
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d -t keyway-harness.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
PG_CTL=""
PG_DATA=""

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$PG_CTL" ]; then
        as_pg "$PG_CTL" stop -D "$PG_DATA" -m immediate -w -t 10 >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '>> %s\n' "$*" >&2; }
has() { [[ " $SECTIONS " == *" $1 "* ]]; }

# 1,000 connections to Keyway and as many from it to the upstream.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- wrk -----------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "wrk is missing; installing it with apt-get"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
        echo "wrk is missing. Install it (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk) and run again." >&2
        exit 1
    fi
fi
command -v curl >/dev/null 2>&1 || { echo "curl is required." >&2; exit 1; }

# --- build ---------------------------------------------------------------------------------
log "building (Release)"
for project in src/Keyway/Keyway.csproj bench/Keyway.Bench.Upstream/Keyway.Bench.Upstream.csproj \
    bench/Keyway.Bench.Yarp/Keyway.Bench.Yarp.csproj bench/Keyway.Benchmarks/Keyway.Benchmarks.csproj; do
    dotnet build "$ROOT/$project" -c Release -nologo -v quiet >"$WORK/build.log" 2>&1 ||
        { cat "$WORK/build.log" >&2; exit 1; }
done
KEYWAY_DLL="$ROOT/src/Keyway/bin/Release/net10.0/keyway.dll"
UPSTREAM_DLL="$ROOT/bench/Keyway.Bench.Upstream/bin/Release/net10.0/Keyway.Bench.Upstream.dll"
YARP_DLL="$ROOT/bench/Keyway.Bench.Yarp/bin/Release/net10.0/Keyway.Bench.Yarp.dll"
SEEDER_DLL="$ROOT/bench/Keyway.Benchmarks/bin/Release/net10.0/Keyway.Benchmarks.dll"

# --- ports and processes ------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
USED_PORTS=" "
free_port() {
    local p
    while :; do
        # Below Linux's default ephemeral range (32768-60999), where the storm's thousands of
        # outbound connections would otherwise take a port between this check and the bind.
        p=$((20000 + RANDOM % 12000))
        if [[ "$USED_PORTS" != *" $p "* ]] && ! port_in_use "$p"; then
            USED_PORTS+="$p "
            echo "$p"
            return
        fi
    done
}

wait_for() { # url name pid [tries of 10 ms]
    local i tries="${4:-3000}"
    for ((i = 0; i < tries; i++)); do
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
        if ! kill -0 "$3" 2>/dev/null; then
            echo "$2 exited during start-up; its log:" >&2
            cat "$WORK/$2.log" >&2
            exit 1
        fi
        sleep 0.01
    done
    echo "$2 did not answer $1 within $((tries / 100)) s; its log:" >&2
    cat "$WORK/$2.log" >&2
    exit 1
}

now_ms() { date +%s%3N; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
rss_mb() { awk '/^VmRSS:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; } # utime + stime

UP_PORT="$(free_port)"
YARP_PORT="$(free_port)"
KW_PORT="$(free_port)"
ADMIN_TOKEN="kw_bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
AUTH_HEADER="Authorization: Bearer $ADMIN_TOKEN"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
unset KEYWAY_LOG_FORMAT KEYWAY_DATABASE_URL OTEL_EXPORTER_OTLP_ENDPOINT

start_keyway() { # name port data-dir [database url] -> sets KW_STARTED_PID
    local name=$1 port=$2 dir=$3 db="${4:-}"
    mkdir -p "$dir"
    # The upstream listens on loopback, which Keyway refuses by default: allow it (KEYWAY_ENV may override).
    env KEYWAY_ADMIN_TOKEN="$ADMIN_TOKEN" KEYWAY_MASTER_KEY="$MASTER_KEY" Logging__LogLevel__Default=Warning \
        KEYWAY_OUTBOUND_ALLOW=127.0.0.0/8,::1/128 ${db:+KEYWAY_DATABASE_URL="$db"} "${KEYWAY_ENV_ARGS[@]}" \
        "${PROXY_ON[@]}" dotnet "$KEYWAY_DLL" serve --data-dir "$dir" --urls "http://127.0.0.1:$port" >"$WORK/$name.log" 2>&1 &
    KW_STARTED_PID=$!
    PIDS+=("$KW_STARTED_PID")
}

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

api() { # port method path json
    local status
    status="$(curl -sS -o "$WORK/api.out" -w '%{http_code}' -X "$2" "http://127.0.0.1:$1$3" \
        -H "$AUTH_HEADER" -H 'Content-Type: application/json' --data "$4")"
    if [[ "$status" != 2* ]]; then
        echo "$2 $3 answered $status:" >&2
        cat "$WORK/api.out" >&2
        exit 1
    fi
}

probe() { # name method url [json]
    local status
    if [ -n "${4:-}" ]; then
        status="$(curl -sS -o "$WORK/probe.out" -w '%{http_code}' -X "$2" -H "$AUTH_HEADER" -H 'Content-Type: application/json' --data "$4" "$3")"
    else
        status="$(curl -sS -o "$WORK/probe.out" -w '%{http_code}' -X "$2" -H "$AUTH_HEADER" "$3")"
    fi
    if [ "$status" != 200 ]; then
        echo "$1 ($3) answered $status:" >&2
        cat "$WORK/probe.out" >&2
        exit 1
    fi
}

oauth_resource() { # counter [expiresIn] [delayMs]
    local url="http://127.0.0.1:$UP_PORT/token?counter=$1&expiresIn=${2:-3600}&delayMs=${3:-0}"
    echo "{\"baseUrl\":\"http://127.0.0.1:$UP_PORT\",\"auth\":{\"type\":\"oauth2\",\"grant\":\"client_credentials\",\"tokenUrl\":\"$url\",\"clientId\":\"bench\",\"clientSecret\":\"{{ environment.variables.CLIENT_SECRET }}\",\"clientAuth\":\"post\"}}"
}
token_count() { curl -fsS "http://127.0.0.1:$UP_PORT/token-count?counter=$1"; }

log "starting the upstream on 127.0.0.1:$UP_PORT"
"${LOAD_ON[@]}" dotnet "$UPSTREAM_DLL" "$UP_PORT" >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")

log "starting YARP on 127.0.0.1:$YARP_PORT"
"${PROXY_ON[@]}" dotnet "$YARP_DLL" "$YARP_PORT" "http://127.0.0.1:$UP_PORT" >"$WORK/yarp.log" 2>&1 &
YARP_PID=$!
PIDS+=("$YARP_PID")

log "starting Keyway on 127.0.0.1:$KW_PORT (SQLite in a temporary directory)"
start_keyway keyway "$KW_PORT" "$WORK/keyway-data"
KW_PID=$KW_STARTED_PID

wait_for "http://127.0.0.1:$UP_PORT/hello" upstream "$UP_PID"
wait_for "http://127.0.0.1:$YARP_PORT/hello" yarp "$YARP_PID"
wait_for "http://127.0.0.1:$KW_PORT/healthz" keyway "$KW_PID"

# --- configure Keyway ----------------------------------------------------------------------
log "configuring Keyway: secrets, a bearer resource, an OAuth 2.0 resource"
api "$KW_PORT" PUT /api/v1/environments/production/variables/TOKEN '{"value":"bench-upstream-token-0123456789","secret":true}'
api "$KW_PORT" PUT /api/v1/environments/production/variables/CLIENT_SECRET '{"value":"bench-client-secret-0123456789","secret":true}'
api "$KW_PORT" PUT /api/v1/resources/bench \
    "{\"baseUrl\":\"http://127.0.0.1:$UP_PORT\",\"auth\":{\"type\":\"bearer\",\"token\":\"{{ environment.variables.TOKEN }}\"}}"
api "$KW_PORT" PUT /api/v1/resources/bench-each \
    "{\"baseUrl\":\"http://127.0.0.1:$UP_PORT\",\"auth\":{\"type\":\"bearer\",\"token\":\"{{ environment.variables.TOKEN }}\"},\"audit\":{\"traffic\":\"each\"}}"
api "$KW_PORT" PUT /api/v1/resources/oauth "$(oauth_resource oauth)"
# The stream section's resource that sends no secret, so its answers are not redacted.
api "$KW_PORT" PUT /api/v1/resources/plain "{\"baseUrl\":\"http://127.0.0.1:$UP_PORT\"}"

KW_URL="http://127.0.0.1:$KW_PORT/proxy/bench/hello"
KW_OAUTH_URL="http://127.0.0.1:$KW_PORT/proxy/oauth/hello"
KW_EACH_URL="http://127.0.0.1:$KW_PORT/proxy/bench-each/hello"
STREAM_BYTES=$((STREAM_MB * 1024 * 1024))
YARP_URL="http://127.0.0.1:$YARP_PORT/hello"
DIRECT_URL="http://127.0.0.1:$UP_PORT/hello"
RUN_URL="http://127.0.0.1:$KW_PORT/api/v1/resources/bench/run"
QUERY_URL="http://127.0.0.1:$KW_PORT/api/v1/queries/hello/run"
QUERY_SCRIPT_URL="http://127.0.0.1:$KW_PORT/api/v1/queries/hello-script/run"
RUN_BODY='{"path":"/hello"}'
QUERY_BODY='{"inputs":{"id":"abc-42"}}'

probe keyway GET "$KW_URL"
probe keyway-oauth GET "$KW_OAUTH_URL"
probe keyway-each GET "$KW_EACH_URL"

# The saved queries (one with a Jint script) are created by the api section, after the proxy load:
# until then the Keyway process has served only configuration calls and the proxy, so the peak RSS
# the main section reports is the proxy's (compiling a first script costs about 8 MB of its own).
configure_api() {
    log "configuring Keyway: saved queries (one with a script)"
    api "$KW_PORT" PUT /api/v1/queries/hello \
        '{"resource":"bench","path":"/hello","query":{"id":"{{ inputs.id }}","team":"{{ current_user.name }}"},"headers":{"X-Request-Id":"{{ inputs.id }}"}}'
    api "$KW_PORT" PUT /api/v1/queries/hello-script \
        '{"resource":"bench","path":"/hello","query":{"id":"{{ inputs.id.toUpperCase() }}"}}'
    probe run POST "$RUN_URL" "$RUN_BODY"
    probe query POST "$QUERY_URL" "$QUERY_BODY"
    probe query-script POST "$QUERY_SCRIPT_URL" "$QUERY_BODY"
}

post_script() { # file body
    printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$2'" >"$1"
}
post_script "$WORK/run.lua" "$RUN_BODY"
post_script "$WORK/query.lua" "$QUERY_BODY"

# --- load ----------------------------------------------------------------------------------
# Every run records requests/s, latencies and the CPU time the measured process spent per request.
declare -A PID_OF=([keyway]=$KW_PID [keyway-oauth]=$KW_PID [keyway-each]=$KW_PID [stream-redacted]=$KW_PID [stream-plain]=$KW_PID [run]=$KW_PID [query]=$KW_PID [query-script]=$KW_PID
    [yarp]=$YARP_PID [direct]=$UP_PID)

run_wrk() { # target concurrency duration out
    local target=$1 c=$2 d=$3 out=$4 t=2 before after
    [ "$c" -lt 2 ] && t=1
    before="$(cpu_ticks "${PID_OF[$target]}")"
    case "$target" in
        keyway) "${LOAD_ON[@]}" wrk -t"$t" -c"$c" -d"${d}s" --latency -H "$AUTH_HEADER" "$KW_URL" >"$out" 2>&1 ;;
        keyway-oauth) "${LOAD_ON[@]}" wrk -t"$t" -c"$c" -d"${d}s" --latency -H "$AUTH_HEADER" "$KW_OAUTH_URL" >"$out" 2>&1 ;;
        keyway-each) "${LOAD_ON[@]}" wrk -t"$t" -c"$c" -d"${d}s" --latency -H "$AUTH_HEADER" "$KW_EACH_URL" >"$out" 2>&1 ;;
        stream-redacted) "${LOAD_ON[@]}" wrk -t1 -c"$c" -d"${d}s" --latency -H "$AUTH_HEADER" "http://127.0.0.1:$KW_PORT/proxy/bench/big?bytes=$STREAM_BYTES" >"$out" 2>&1 ;;
        stream-plain) "${LOAD_ON[@]}" wrk -t1 -c"$c" -d"${d}s" --latency -H "$AUTH_HEADER" "http://127.0.0.1:$KW_PORT/proxy/plain/big?bytes=$STREAM_BYTES" >"$out" 2>&1 ;;
        run) "${LOAD_ON[@]}" wrk -t"$t" -c"$c" -d"${d}s" --latency -H "$AUTH_HEADER" -s "$WORK/run.lua" "$RUN_URL" >"$out" 2>&1 ;;
        query) "${LOAD_ON[@]}" wrk -t"$t" -c"$c" -d"${d}s" --latency -H "$AUTH_HEADER" -s "$WORK/query.lua" "$QUERY_URL" >"$out" 2>&1 ;;
        query-script) "${LOAD_ON[@]}" wrk -t"$t" -c"$c" -d"${d}s" --latency -H "$AUTH_HEADER" -s "$WORK/query.lua" "$QUERY_SCRIPT_URL" >"$out" 2>&1 ;;
        yarp) "${LOAD_ON[@]}" wrk -t"$t" -c"$c" -d"${d}s" --latency "$YARP_URL" >"$out" 2>&1 ;;
        direct) "${LOAD_ON[@]}" wrk -t"$t" -c"$c" -d"${d}s" --latency "$DIRECT_URL" >"$out" 2>&1 ;;
    esac
    after="$(cpu_ticks "${PID_OF[$target]}")"
    echo "$((after - before))" >"$out.cpu"
    if grep -q 'Non-2xx\|Socket errors' "$out"; then
        log "warning: $target c=$c: $(grep 'Non-2xx\|Socket errors' "$out" | tr -s ' ' | tr '\n' ' ')"
    fi
}

# wrk prints latencies as 812.00us, 1.23ms or 1.05s; to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000
        else if (v ~ /ms$/) n = n
        else if (v ~ /m$/) n = n * 60000
        else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n }'
}
rps_of() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$1"; }
requests_of() { awk '/requests in/ { print $1; exit }' "$1"; }
pct_of() { to_ms "$(awk -v p="$2%" '$1 == p { print $2; exit }' "$1")"; }
cpu_us_per_request() { # file
    awk -v t="$(cat "$1.cpu")" -v n="$(requests_of "$1")" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print "?" }'
}

declare -A MEAN P50 P99 CPU SPREAD ROUNDS_OF

# Summarizes ROUNDS runs of target at c (files $WORK/$prefix-$target-c$c-r$round.txt).
summarize() { # prefix target c
    local prefix=$1 target=$2 c=$3 rounds="" values="" p50s="" p99s="" cpus="" round f
    for round in $(seq 1 "$ROUNDS"); do
        f="$WORK/$prefix-$target-c$c-r$round.txt"
        rounds+="${rounds:+ / }$(rps_of "$f")"
        values+="$(rps_of "$f") "
        p50s+="$(pct_of "$f" 50) "
        p99s+="$(pct_of "$f" 99) "
        cpus+="$(cpu_us_per_request "$f") "
    done
    ROUNDS_OF[$target,$c]="$rounds"
    MEAN[$target,$c]="$(echo "$values" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", s / NF }')"
    SPREAD[$target,$c]="$(echo "$values" | awk '{ lo = $1; hi = $1; s = 0; for (i = 1; i <= NF; i++) { s += $i; if ($i < lo) lo = $i; if ($i > hi) hi = $i }
        printf "±%.0f%%", (hi - lo) / 2 / (s / NF) * 100 }')"
    P50[$target,$c]="$(echo "$p50s" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.3f", s / NF }')"
    P99[$target,$c]="$(echo "$p99s" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.3f", s / NF }')"
    CPU[$target,$c]="$(echo "$cpus" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", s / NF }')"
}

# The median over the c=1 latency rounds of a target's wrk percentile, in ms.
median_pct() { # target percentile
    local round
    for round in $(seq 1 "$LATENCY_ROUNDS"); do
        pct_of "$WORK/latency-$1-r$round.txt" "$2"
        echo
    done | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The added-latency ratio of each c=1 latency round on its own, as "min–max".
round_ratios() { # target percentile
    local round
    for round in $(seq 1 "$LATENCY_ROUNDS"); do
        awk -v k="$(pct_of "$WORK/latency-$1-r$round.txt" "$2")" -v y="$(pct_of "$WORK/latency-yarp-r$round.txt" "$2")" \
            -v d="$(pct_of "$WORK/latency-direct-r$round.txt" "$2")" 'BEGIN { if (y > d) printf "%.2f\n", (k - d) / (y - d) }'
    done | sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%s–%s", v[1], v[NR]; else print "n/a" }'
}

# The ratio of a to b per round (a and b ran next to each other), as "mean (min–max)".
paired_ratio() { # prefix a b c
    local round ratios=""
    for round in $(seq 1 "$ROUNDS"); do
        ratios+="$(awk -v a="$(rps_of "$WORK/$1-$2-c$4-r$round.txt")" -v b="$(rps_of "$WORK/$1-$3-c$4-r$round.txt")" 'BEGIN { printf "%.4f", a / b }') "
    done
    echo "$ratios" | tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f (%.2f–%.2f)", m, v[1], v[NR] }'
}

# The median over the rounds of a's wrk percentile over b's, per round (a and b ran next to each other).
paired_pct_ratio() { # prefix a b c percentile
    local round
    for round in $(seq 1 "$ROUNDS"); do
        awk -v a="$(pct_of "$WORK/$1-$2-c$4-r$round.txt" "$5")" -v b="$(pct_of "$WORK/$1-$3-c$4-r$round.txt" "$5")" 'BEGIN { printf "%.4f\n", a / b }'
    done | sort -g | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f (%.2f–%.2f)", m, v[1], v[NR] }'
}

table_header() {
    printf '| %-12s | %4s | %-21s | %10s | %6s | %8s | %8s | %11s |\n' target c "req/s per round" "req/s mean" spread "p50 ms" "p99 ms" "CPU µs/req"
    printf '|--------------|-----:|-----------------------|-----------:|-------:|---------:|---------:|------------:|\n'
}
table_row() { # target c
    printf '| %-12s | %4s | %-21s | %10s | %6s | %8s | %8s | %11s |\n' "$1" "$2" "${ROUNDS_OF[$1,$2]}" "${MEAN[$1,$2]}" \
        "${SPREAD[$1,$2]}" "${P50[$1,$2]}" "${P99[$1,$2]}" "${CPU[$1,$2]}"
}

echo
echo "# Keyway harness, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
if [ -n "${PROXY_CPUS:-}${LOAD_CPUS:-}" ]; then
    echo "$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)); Keyway and YARP on CPUs ${PROXY_CPUS:-all}, wrk and the upstream on CPUs ${LOAD_CPUS:-all};"
else
    echo "$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), shared by wrk, the upstream, YARP and Keyway;"
fi
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg). wrk ${DURATION}s per run, $ROUNDS rounds, alternating."
echo "GET /hello answers 64 bytes of JSON. CPU µs/req: CPU time of the measured process (Keyway, YARP or the"
echo "upstream) during the run divided by the requests served; it is what throughput is on cores of its own."

# --- main: the proxy against YARP and the upstream ----------------------------------------
if has main; then
    log "warming up (5 s each at c=32)"
    for target in keyway keyway-each keyway-oauth yarp direct; do
        run_wrk "$target" 32 5 "$WORK/warmup-$target.txt"
    done

    TARGETS=(keyway yarp keyway-each keyway-oauth direct)
    HWM_BY_C=""
    for c in $CONCURRENCY; do
        for round in $(seq 1 "$ROUNDS"); do
            for target in "${TARGETS[@]}"; do
                log "main round $round: $target c=$c (${DURATION}s)"
                run_wrk "$target" "$c" "$DURATION" "$WORK/main-$target-c$c-r$round.txt"
            done
        done
        # The high-water mark only rises: after each level it is the peak of that level and those before.
        HWM_BY_C+="${HWM_BY_C:+, }up to c=$c $(hwm_mb "$KW_PID") MB"
    done
    KW_HWM="$(hwm_mb "$KW_PID")"
    YARP_HWM="$(hwm_mb "$YARP_PID")"
    UP_HWM="$(hwm_mb "$UP_PID")"

    # The added-latency bar from many short rounds at c=1: one run's p99 moves by more than the bar
    # from run to run on a shared machine, so the bar is read from the medians of LATENCY_ROUNDS
    # rounds of LATENCY_DURATION seconds, the four targets alternating within each round.
    for round in $(seq 1 "$LATENCY_ROUNDS"); do
        log "latency round $round of $LATENCY_ROUNDS (c=1, ${LATENCY_DURATION}s each)"
        for target in keyway yarp keyway-oauth direct; do
            run_wrk "$target" 1 "$LATENCY_DURATION" "$WORK/latency-$target-r$round.txt"
        done
    done

    echo
    echo "## Proxy: Keyway against plain YARP and the upstream directly"
    echo
    echo "keyway: /proxy/bench/hello, static bearer token from the resolved-resource cache, traffic recorded as"
    echo "rollups (the default). keyway-each: the same resource with audit.traffic: each (one chained event per"
    echo "request). keyway-oauth: /proxy/oauth/hello, OAuth 2.0 client-credentials token from the credential"
    echo "engine's cache, rollups. All authenticate an API key, authorize, strip the caller's credentials,"
    echo "attach the resource's and stream the answer through the redactor. Keyway logs at Warning here, so"
    echo "its access log lines (Information) are filtered out before they are queued."
    echo
    table_header
    for c in $CONCURRENCY; do
        for target in "${TARGETS[@]}"; do
            summarize main "$target" "$c"
            table_row "$target" "$c"
        done
    done
    echo
    echo "p50 and p99 are the means of the rounds' wrk percentiles; spread is half the range of the rounds, of the mean."
    echo
    echo "Throughput, Keyway / YARP, paired per round, median (min–max) (bars: rollup >= 0.95 at c=32 and 128,"
    echo ">= 0.90 at c=1024 with p99 <= 2x YARP's; each >= 0.80); CPU per request, YARP / Keyway:"
    for c in $CONCURRENCY; do
        for target in keyway keyway-each keyway-oauth; do
            printf '  c=%-4s %-12s throughput %s   CPU %s   (YARP %s µs/req, Keyway %s µs/req)\n' "$c" "$target" \
                "$(paired_ratio main "$target" yarp "$c")" \
                "$(awk -v y="${CPU[yarp,$c]}" -v k="${CPU[$target,$c]}" 'BEGIN { printf "%.2f", y / k }')" "${CPU[yarp,$c]}" "${CPU[$target,$c]}"
        done
        if [ "$c" -ge 512 ]; then
            printf '  c=%-4s p99, Keyway / YARP, paired per round: keyway %s, keyway-oauth %s\n' "$c" \
                "$(paired_pct_ratio main keyway yarp "$c" 99)" "$(paired_pct_ratio main keyway-oauth yarp "$c" 99)"
        fi
    done
    echo
    if [ "$LATENCY_ROUNDS" -gt 0 ]; then
        echo "Total latency at c=1, Keyway / YARP as wrk reports it, medians of $LATENCY_ROUNDS alternating rounds of ${LATENCY_DURATION}s (bars: p50 <= 1.1, p99 <= 1.25):"
        for target in keyway keyway-oauth; do
            for p in 50 99; do
                awk -v k="$(median_pct "$target" "$p")" -v y="$(median_pct yarp "$p")" -v p="$p" -v t="$target" \
                    'BEGIN { printf "  %-12s p%s: %.2f   (Keyway %.3f ms, YARP %.3f ms)\n", t, p, k / y, k, y }'
            done
        done
        echo
        echo "Added latency at c=1, (Keyway - direct) / (YARP - direct), the same medians:"
        for target in keyway keyway-oauth; do
            for p in 50 99; do
                k="$(median_pct "$target" "$p")" y="$(median_pct yarp "$p")" d="$(median_pct direct "$p")"
                awk -v k="$k" -v y="$y" -v d="$d" -v p="$p" -v t="$target" -v rounds="$(round_ratios "$target" "$p")" 'BEGIN {
                    ka = k - d; ya = y - d
                    if (ya > 0) r = sprintf("%.2f", ka / ya); else r = "n/a (YARP adds nothing measurable)"
                    printf "  %-12s p%s: %s   (Keyway adds %.3f ms, YARP adds %.3f ms over direct %.3f ms; per round %s)\n", t, p, r, ka, ya, d, rounds }'
            done
        done
    fi
    echo
    echo "Peak RSS (VmHWM) after the proxy load: Keyway ${KW_HWM} MB, YARP ${YARP_HWM} MB, upstream ${UP_HWM} MB (Keyway bar: <= 150 MB;"
    echo "the Keyway process has served configuration calls and the proxy only, no /run, saved query or script yet)"
    echo "Keyway's peak RSS as the load rose: $HWM_BY_C"

    # Bytes allocated per request: the runtime's allocation counter over a c=8 run, divided by
    # the requests wrk counted. Needs dotnet-counters (dotnet tool install -g dotnet-counters).
    COUNTERS="$(command -v dotnet-counters || echo "$HOME/.dotnet/tools/dotnet-counters")"
    if [ -x "$COUNTERS" ]; then
        alloc_per_request() { # target
            local f="$WORK/alloc-$1.txt" rate
            run_wrk "$1" 8 12 "$f" &
            local wrk_pid=$!
            sleep 2
            "$COUNTERS" collect -p "${PID_OF[$1]}" --counters 'System.Runtime[dotnet.gc.heap.total_allocated]' --format csv \
                -o "$WORK/alloc-$1.csv" --duration 00:00:00:08 >/dev/null 2>&1 || true
            wait "$wrk_pid"
            rate="$(grep total_allocated "$WORK/alloc-$1.csv" 2>/dev/null | awk -F, '{ s += $NF; n++ } END { if (n) print s / n; else print 0 }')"
            awk -v r="$rate" -v q="$(rps_of "$f")" 'BEGIN { if (r > 0 && q > 0) printf "%.0f", r / q; else print "?" }'
        }
        echo
        echo "Allocated per request (c=8, the runtime's allocation rate over wrk's request rate):" \
            "Keyway $(alloc_per_request keyway) B, Keyway OAuth $(alloc_per_request keyway-oauth) B, YARP $(alloc_per_request yarp) B"
    fi
fi

# --- stream: a large answer, redacted and not ------------------------------------------------
if has stream; then
    probe stream-plain GET "http://127.0.0.1:$KW_PORT/proxy/plain/big?bytes=1024"
    run_wrk stream-redacted 2 3 "$WORK/warmup-stream-redacted.txt"
    run_wrk stream-plain 2 3 "$WORK/warmup-stream-plain.txt"
    STREAM_RSS_BEFORE="$(rss_mb "$KW_PID")"
    STREAM_HWM_BEFORE="$(hwm_mb "$KW_PID")"
    for round in $(seq 1 "$ROUNDS"); do
        for target in stream-redacted stream-plain; do
            log "stream round $round: $target (${STREAM_MB} MB answers, c=2, ${DURATION}s)"
            run_wrk "$target" 2 "$DURATION" "$WORK/stream-$target-c2-r$round.txt"
        done
    done
    # CPU µs per MB of answer: the process's CPU time over the megabytes wrk read.
    cpu_us_per_mb() { # file
        awk -v t="$(cat "$1.cpu")" -v n="$(requests_of "$1")" -v mb="$STREAM_MB" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / (n * mb); else print "?" }'
    }
    echo
    echo "## A ${STREAM_MB} MB answer, redacted and not (c=2)"
    echo
    echo "stream-redacted: /proxy/bench/big, a resource that sends a secret, so every byte of the answer"
    echo "passes the redactor (every form of every known secret searched for). stream-plain: /proxy/plain/big,"
    echo "a resource that sends none, forwarded as is. The upstream answers ${STREAM_MB} MB of JSON items with its length."
    echo
    printf '| %-15s | %-27s | %12s | %18s |
' target "MB/s per round" "CPU µs / MB" "p50 ms per answer"
    printf '|-----------------|-----------------------------|-------------:|-------------------:|
'
    declare -A STREAM_CPU
    for target in stream-redacted stream-plain; do
        mbs="" cpus=""
        for round in $(seq 1 "$ROUNDS"); do
            f="$WORK/stream-$target-c2-r$round.txt"
            mbs+="${mbs:+ / }$(awk -v r="$(rps_of "$f")" -v q="$(awk '/^Requests\/sec:/ { print $2 }' "$f")" -v mb="$STREAM_MB" 'BEGIN { printf "%.0f", q * mb }')"
            cpus+="$(cpu_us_per_mb "$f") "
        done
        STREAM_CPU[$target]="$(echo "$cpus" | tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%.0f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
        printf '| %-15s | %-27s | %12s | %18s |
' "$target" "$mbs" "${STREAM_CPU[$target]}" "$(pct_of "$WORK/stream-$target-c2-r1.txt" 50)"
    done
    echo
    echo "CPU per byte, redacted / plain, medians of $ROUNDS rounds (bar: <= 1.2): $(awk -v r="${STREAM_CPU[stream-redacted]}" -v p="${STREAM_CPU[stream-plain]}" 'BEGIN { printf "%.2f", r / p }')"
    echo "Keyway's resident memory: ${STREAM_RSS_BEFORE} MB before the stream rounds, $(rss_mb "$KW_PID") MB after; peak (VmHWM) ${STREAM_HWM_BEFORE} MB before, $(hwm_mb "$KW_PID") MB after."
fi

# --- api: /run and saved queries ---------------------------------------------------------
if has api; then
    configure_api
    c=$API_CONCURRENCY
    for target in run query query-script; do
        run_wrk "$target" "$c" 5 "$WORK/warmup-$target.txt"
    done
    API_TARGETS=(run yarp query query-script)
    for round in $(seq 1 "$ROUNDS"); do
        for target in "${API_TARGETS[@]}"; do
            log "api round $round: $target c=$c (${DURATION}s)"
            run_wrk "$target" "$c" "$DURATION" "$WORK/api-$target-c$c-r$round.txt"
        done
    done
    echo
    echo "## The JSON API: /run and saved queries (c=$c)"
    echo
    echo "run: POST /api/v1/resources/bench/run {\"path\":\"/hello\"} (buffered, redacted, answered as JSON)."
    echo "query: POST /api/v1/queries/hello/run, templates over inputs and current_user (member paths)."
    echo "query-script: the same with {{ inputs.id.toUpperCase() }} (a Jint script per request)."
    echo
    table_header
    for target in "${API_TARGETS[@]}"; do
        summarize api "$target" "$c"
        table_row "$target" "$c"
    done
    echo
    for target in run query query-script; do
        printf '  %-12s / YARP proxy, paired per round: %s\n' "$target" "$(paired_ratio api "$target" yarp "$c")"
    done
    echo "Peak RSS (VmHWM) of Keyway after the API load: $(hwm_mb "$KW_PID") MB"
fi

# --- storm: one token request for 1,000 concurrent requests ------------------------------
storm_on() { # label counter port...
    local label=$1 counter=$2 port i n=$(($# - 2)) conns pids=() files=()
    shift 2
    conns=$(((1000 + n - 1) / n))
    i=0
    for port in "$@"; do
        # The API key is verified (and cached) first: the storm is about the credential.
        probe "storm warm-up" GET "http://127.0.0.1:$port/api/v1/environments"
    done
    for port in "$@"; do
        "${LOAD_ON[@]}" wrk -t1 -c"$conns" -d8s --timeout 20s -H "$AUTH_HEADER" "http://127.0.0.1:$port/proxy/$counter/hello" >"$WORK/storm-$counter-$i.txt" 2>&1 &
        pids+=($!)
        files+=("$WORK/storm-$counter-$i.txt")
        i=$((i + 1))
    done
    for i in "${pids[@]}"; do wait "$i"; done
    local requests=0 bad=0 f
    for f in "${files[@]}"; do
        requests=$((requests + $(requests_of "$f")))
        bad=$((bad + $(awk '/Non-2xx/ { print $NF; exit }' "$f" | grep -o '[0-9]*' || echo 0)))
    done
    printf '| %-44s | %5s | %8s | %7s | %14s |\n' "$label" "$((conns * n))" "$requests" "$bad" "$(token_count "$counter")"
}

if has storm; then
    log "storm: 1,000 connections on a cold credential (the token endpoint answers after 1 s)"
    api "$KW_PORT" PUT /api/v1/resources/storm "$(oauth_resource storm 3600 1000)"
    STORM_ROWS="$(storm_on "1 Keyway process, SQLite" storm "$KW_PORT")"
    REPLICA_ROW=""
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
    if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ]; then
        log "storm: starting PostgreSQL and 3 Keyway replicas on it"
        PG_PORT="$(free_port)"
        PG_DATA="$WORK/pg/data"
        mkdir -p "$WORK/pg/sock"
        if [ "$(id -u)" = 0 ]; then
            chown -R postgres:postgres "$WORK/pg"
            as_pg() { runuser -u postgres -- "$@"; }
        else
            as_pg() { "$@"; }
        fi
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U keyway --auth=trust --encoding=UTF8 --locale=C --no-sync >"$WORK/initdb.log" 2>&1 ||
            { cat "$WORK/initdb.log" >&2; exit 1; }
        PG_CTL="$PG_BIN/pg_ctl"
        as_pg "$PG_CTL" start -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories='$WORK/pg/sock' -c fsync=off -c synchronous_commit=off -c max_connections=300" \
            >/dev/null
        "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U keyway keyway_bench
        DB_URL="postgres://keyway@127.0.0.1:$PG_PORT/keyway_bench"
        REPLICA_PORTS=()
        for i in 1 2 3; do
            port="$(free_port)"
            start_keyway "replica$i" "$port" "$WORK/replica$i" "$DB_URL"
            wait_for "http://127.0.0.1:$port/healthz" "replica$i" "$KW_STARTED_PID"
            REPLICA_PORTS+=("$port")
        done
        api "${REPLICA_PORTS[0]}" PUT /api/v1/environments/production/variables/CLIENT_SECRET '{"value":"bench-client-secret-0123456789","secret":true}'
        api "${REPLICA_PORTS[0]}" PUT /api/v1/resources/storm3 "$(oauth_resource storm3 3600 1000)"
        REPLICA_ROW="$(storm_on "3 Keyway replicas, one PostgreSQL (334 each)" storm3 "${REPLICA_PORTS[@]}")"
    else
        log "PostgreSQL's initdb was not found: the replica storm is skipped"
    fi
    echo
    echo "## Refresh storm (bar: exactly 1 token request)"
    echo
    echo "wrk opens every connection at once; each sends GET /proxy/<resource>/hello on a credential that no"
    echo "process holds yet, and the token endpoint holds its answer 1 s, so every first request finds the"
    echo "one refresh in flight. Then the connections go on for 8 s in all on the cached token. Each"
    echo "process has verified the API key once before, so the storm is the credential's alone."
    echo
    printf '| %-44s | %5s | %8s | %7s | %14s |\n' setup conns requests "non-2xx" "token requests"
    printf '|----------------------------------------------|------:|---------:|--------:|---------------:|\n'
    echo "$STORM_ROWS"
    [ -n "$REPLICA_ROW" ] && echo "$REPLICA_ROW"
fi

# --- scale: how cost grows ------------------------------------------------------------------
scale_point() { # label resources credentials concurrency lua-or-empty -> prints a row
    local label=$1 resources=$2 credentials=$3 c=$4 port dir pid t0 ready seeded f
    dir="$WORK/scale-$resources-$credentials"
    rm -rf "$dir"
    t0="$(now_ms)"
    KEYWAY_MASTER_KEY="$MASTER_KEY" dotnet "$SEEDER_DLL" seed "$dir" "http://127.0.0.1:$UP_PORT" "$resources" "$credentials" >"$WORK/seed.log" 2>&1 ||
        { cat "$WORK/seed.log" >&2; exit 1; }
    seeded=$(( $(now_ms) - t0 ))
    port="$(free_port)"
    # The first start bootstraps admin (a password hash) on the seeded store; the second is the
    # restart of an install that holds all of it, which is what is timed.
    start_keyway "scale" "$port" "$dir"
    wait_for "http://127.0.0.1:$port/readyz" scale "$KW_STARTED_PID"
    stop_pid "$KW_STARTED_PID"
    t0="$(now_ms)"
    start_keyway "scale" "$port" "$dir"
    pid=$KW_STARTED_PID
    wait_for "http://127.0.0.1:$port/readyz" scale "$pid"
    ready=$(( $(now_ms) - t0 ))
    # CPU time the process spent to get there: what start-up costs when cores are contended.
    local ready_cpu; ready_cpu="$(awk -v t="$(cpu_ticks "$pid")" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", t * 1000 / hz }')"
    local ready_rss; ready_rss="$(rss_mb "$pid")"
    # Every resource once (compiled and resolved), then random resources under load.
    printf 'i = -1\nrequest = function()\n  i = i + 1\n  return wrk.format(nil, "/proxy/r" .. (i %% %d) .. "/hello")\nend\n' "$resources" >"$WORK/seq.lua"
    printf 'math.randomseed(42)\nrequest = function()\n  return wrk.format(nil, "/proxy/r" .. math.random(0, %d) .. "/hello")\nend\n' "$((resources - 1))" >"$WORK/random.lua"
    "${LOAD_ON[@]}" wrk -t1 -c4 -d5s -H "$AUTH_HEADER" -s "$WORK/seq.lua" "http://127.0.0.1:$port" >"$WORK/scale-warm.txt" 2>&1
    f="$WORK/scale-run.txt"
    local before after; before="$(cpu_ticks "$pid")"
    "${LOAD_ON[@]}" wrk -t2 -c"$c" -d"${DURATION}s" --latency -H "$AUTH_HEADER" -s "$WORK/random.lua" "http://127.0.0.1:$port" >"$f" 2>&1
    after="$(cpu_ticks "$pid")"
    echo "$((after - before))" >"$f.cpu"
    local bad; bad="$(awk '/Non-2xx/ { print $NF; exit }' "$f")"
    printf '| %-26s | %9s | %11s | %9s | %8s | %11s | %6s | %6s | %s |\n' "$label" "$resources" "$credentials" "$ready ms ($ready_cpu)" \
        "$(rps_of "$f")" "$(cpu_us_per_request "$f")" "$(pct_of "$f" 99)" "$ready_rss" "$(hwm_mb "$pid") MB${bad:+ ($bad non-2xx)}"
    stop_pid "$pid"
}

if has scale; then
    echo
    echo "## How cost grows"
    echo
    echo "Each row: a store seeded with Keyway's own services (bench/Keyway.Benchmarks seed: r0…rN-1 bearer"
    echo "resources, and encrypted per-user credentials valid for a day), keyway serve started on it once"
    echo "(first start) and again: start to ready is the restart, process start to /readyz 200 (curl every"
    echo "10 ms). Then every resource requested once, then ${DURATION}s of"
    echo "c=32 over random resources."
    echo
    printf '| %-26s | %9s | %11s | %9s | %8s | %11s | %6s | %6s | %s |\n' point resources credentials "to ready (CPU ms)" "req/s" "CPU µs/req" "p99 ms" "RSS MB" "peak RSS"
    printf '|----------------------------|----------:|------------:|------------------:|---------:|------------:|-------:|-------:|----------|\n'
    for n in $RESOURCE_COUNTS; do
        log "scale: $n resources"
        scale_point "resources" "$n" 100 32
    done
    for n in $CREDENTIAL_COUNTS; do
        log "scale: $n credentials"
        scale_point "stored credentials" 10 "$n" 32
    done
    echo
    echo "RSS MB: resident size once ready, before any load; peak RSS: VmHWM after the load."
    if has main; then
        echo
        echo "Connections (the main Keyway and YARP, one run each, alternating):"
        echo
        printf '| %6s | %12s | %10s | %12s | %10s | %s |\n' conns "Keyway req/s" "YARP req/s" "Keyway / YARP" "Keyway p99" "Keyway RSS after"
        printf '|-------:|-------------:|-----------:|-------------:|-----------:|------------------|\n'
        for c in $CONNECTION_COUNTS; do
            log "scale: c=$c"
            run_wrk keyway "$c" "$DURATION" "$WORK/conn-keyway-$c.txt"
            run_wrk yarp "$c" "$DURATION" "$WORK/conn-yarp-$c.txt"
            k="$(rps_of "$WORK/conn-keyway-$c.txt")"; y="$(rps_of "$WORK/conn-yarp-$c.txt")"
            printf '| %6s | %12s | %10s | %12s | %10s | %s MB (peak %s) |\n' "$c" "$k" "$y" \
                "$(awk -v k="$k" -v y="$y" 'BEGIN { printf "%.2f", k / y }')" "$(pct_of "$WORK/conn-keyway-$c.txt" 99)" \
                "$(rss_mb "$KW_PID")" "$(hwm_mb "$KW_PID")"
        done
    fi
fi
