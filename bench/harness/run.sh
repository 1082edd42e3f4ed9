#!/usr/bin/env bash
# End-to-end proxy harness (first cut): Keyway against a plain YARP forwarder over the same
# upstream, and the upstream reached directly, with wrk. See docs/benchmarks.md.
#
#   bench/harness/run.sh
#
# Environment: DURATION (wrk seconds per run, default 10), CONCURRENCY (default "1 32 128"),
# ROUNDS (default 2). Not part of CI.
set -euo pipefail

DURATION="${DURATION:-10}"
CONCURRENCY="${CONCURRENCY:-1 32 128}"
ROUNDS="${ROUNDS:-2}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d -t keyway-harness.XXXXXX)"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '>> %s\n' "$*" >&2; }

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
    bench/Keyway.Bench.Yarp/Keyway.Bench.Yarp.csproj; do
    dotnet build "$ROOT/$project" -c Release -nologo -v quiet >"$WORK/build.log" 2>&1 ||
        { cat "$WORK/build.log" >&2; exit 1; }
done
KEYWAY_DLL="$ROOT/src/Keyway/bin/Release/net10.0/keyway.dll"
UPSTREAM_DLL="$ROOT/bench/Keyway.Bench.Upstream/bin/Release/net10.0/Keyway.Bench.Upstream.dll"
YARP_DLL="$ROOT/bench/Keyway.Bench.Yarp/bin/Release/net10.0/Keyway.Bench.Yarp.dll"

# --- ports and processes ------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
USED_PORTS=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        if [[ "$USED_PORTS" != *" $p "* ]] && ! port_in_use "$p"; then
            USED_PORTS+="$p "
            echo "$p"
            return
        fi
    done
}

wait_for() { # url name pid
    local i
    for i in $(seq 1 200); do
        if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
        if ! kill -0 "$3" 2>/dev/null; then
            echo "$2 exited during start-up; its log:" >&2
            cat "$WORK/$2.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$2 did not answer $1 within 20 s; its log:" >&2
    cat "$WORK/$2.log" >&2
    exit 1
}

UP_PORT="$(free_port)"
YARP_PORT="$(free_port)"
KW_PORT="$(free_port)"
ADMIN_TOKEN="kw_bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
MASTER_KEY="$(head -c 32 /dev/urandom | base64)"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
unset KEYWAY_LOG_FORMAT KEYWAY_DATABASE_URL

log "starting the upstream on 127.0.0.1:$UP_PORT"
dotnet "$UPSTREAM_DLL" "$UP_PORT" >"$WORK/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")

log "starting YARP on 127.0.0.1:$YARP_PORT"
dotnet "$YARP_DLL" "$YARP_PORT" "http://127.0.0.1:$UP_PORT" >"$WORK/yarp.log" 2>&1 &
YARP_PID=$!
PIDS+=("$YARP_PID")

log "starting Keyway on 127.0.0.1:$KW_PORT (SQLite in a temporary directory)"
mkdir -p "$WORK/keyway-data"
KEYWAY_ADMIN_TOKEN="$ADMIN_TOKEN" KEYWAY_MASTER_KEY="$MASTER_KEY" Logging__LogLevel__Default=Warning \
    dotnet "$KEYWAY_DLL" serve --data-dir "$WORK/keyway-data" --urls "http://127.0.0.1:$KW_PORT" \
    >"$WORK/keyway.log" 2>&1 &
KW_PID=$!
PIDS+=("$KW_PID")

wait_for "http://127.0.0.1:$UP_PORT/hello" upstream "$UP_PID"
wait_for "http://127.0.0.1:$YARP_PORT/hello" yarp "$YARP_PID"
wait_for "http://127.0.0.1:$KW_PORT/healthz" keyway "$KW_PID"

# --- configure Keyway ----------------------------------------------------------------------
api() { # method path json
    local status
    status="$(curl -sS -o "$WORK/api.out" -w '%{http_code}' -X "$1" "http://127.0.0.1:$KW_PORT$2" \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' --data "$3")"
    if [[ "$status" != 2* ]]; then
        echo "$1 $2 answered $status:" >&2
        cat "$WORK/api.out" >&2
        exit 1
    fi
}
log "creating the secret variable and the bearer resource"
api PUT /api/v1/environments/production/variables/TOKEN '{"value":"bench-upstream-token-0123456789","secret":true}'
api PUT /api/v1/resources/bench \
    "{\"baseUrl\":\"http://127.0.0.1:$UP_PORT\",\"auth\":{\"type\":\"bearer\",\"token\":\"{{ environment.variables.TOKEN }}\"}}"

AUTH_HEADER="Authorization: Bearer $ADMIN_TOKEN"
KW_URL="http://127.0.0.1:$KW_PORT/proxy/bench/hello"
YARP_URL="http://127.0.0.1:$YARP_PORT/hello"
DIRECT_URL="http://127.0.0.1:$UP_PORT/hello"

status="$(curl -sS -o "$WORK/probe.out" -w '%{http_code}' -H "$AUTH_HEADER" "$KW_URL")"
if [ "$status" != 200 ]; then
    echo "Keyway's proxy answered $status:" >&2
    cat "$WORK/probe.out" >&2
    exit 1
fi

# --- load ----------------------------------------------------------------------------------
run_wrk() { # target concurrency duration out
    local target=$1 c=$2 d=$3 out=$4 t=2
    [ "$c" -lt 2 ] && t=1
    case "$target" in
        keyway) wrk -t"$t" -c"$c" -d"${d}s" --latency -H "$AUTH_HEADER" "$KW_URL" >"$out" 2>&1 ;;
        yarp) wrk -t"$t" -c"$c" -d"${d}s" --latency "$YARP_URL" >"$out" 2>&1 ;;
        direct) wrk -t"$t" -c"$c" -d"${d}s" --latency "$DIRECT_URL" >"$out" 2>&1 ;;
    esac
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
pct_of() { to_ms "$(awk -v p="$2%" '$1 == p { print $2; exit }' "$1")"; }

log "warming up (5 s each at c=32)"
for target in keyway yarp direct; do
    run_wrk "$target" 32 5 "$WORK/warmup-$target.txt"
done

TARGETS=(keyway yarp direct)
for c in $CONCURRENCY; do
    for round in $(seq 1 "$ROUNDS"); do
        for target in "${TARGETS[@]}"; do
            log "round $round: $target c=$c (${DURATION}s)"
            run_wrk "$target" "$c" "$DURATION" "$WORK/$target-c$c-r$round.txt"
        done
    done
done

hwm_mb() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
KW_HWM="$(hwm_mb "$KW_PID")"
YARP_HWM="$(hwm_mb "$YARP_PID")"
UP_HWM="$(hwm_mb "$UP_PID")"

# --- report --------------------------------------------------------------------------------
declare -A MEAN P50 P99
echo
echo "Keyway vs plain YARP vs direct: GET /hello (64-byte JSON), wrk ${DURATION}s per run, $ROUNDS rounds, alternating"
echo "$(nproc) CPUs shared by wrk, the upstream, YARP and Keyway"
echo
printf '| %-7s | %4s | %s | %9s | %8s | %8s |\n' target c "req/s per round" "req/s mean" "p50 ms" "p99 ms"
printf '|---------|-----:|-----------------|-----------:|---------:|---------:|\n'
for c in $CONCURRENCY; do
    for target in "${TARGETS[@]}"; do
        rounds="" sum=0 p50sum=0 p99sum=0
        for round in $(seq 1 "$ROUNDS"); do
            f="$WORK/$target-c$c-r$round.txt"
            r="$(rps_of "$f")"
            rounds+="${rounds:+ / }$r"
            sum=$((sum + r))
            p50sum="$(awk -v a="$p50sum" -v b="$(pct_of "$f" 50)" 'BEGIN { print a + b }')"
            p99sum="$(awk -v a="$p99sum" -v b="$(pct_of "$f" 99)" 'BEGIN { print a + b }')"
        done
        MEAN[$target,$c]=$((sum / ROUNDS))
        P50[$target,$c]="$(awk -v a="$p50sum" -v n="$ROUNDS" 'BEGIN { printf "%.3f", a / n }')"
        P99[$target,$c]="$(awk -v a="$p99sum" -v n="$ROUNDS" 'BEGIN { printf "%.3f", a / n }')"
        printf '| %-7s | %4s | %-15s | %10s | %8s | %8s |\n' "$target" "$c" "$rounds" "${MEAN[$target,$c]}" \
            "${P50[$target,$c]}" "${P99[$target,$c]}"
    done
done
echo
echo "p50 and p99 are the means of the rounds' wrk percentiles."
echo
echo "Throughput, Keyway / YARP (bar: >= 0.95):"
for c in $CONCURRENCY; do
    awk -v k="${MEAN[keyway,$c]}" -v y="${MEAN[yarp,$c]}" -v d="${MEAN[direct,$c]}" -v c="$c" \
        'BEGIN { printf "  c=%-4s %.3f   (Keyway %.0f, YARP %.0f, direct %.0f req/s)\n", c, k / y, k, y, d }'
done
first_c="$(echo "$CONCURRENCY" | awk '{ print $1 }')"
echo
echo "Added latency at c=$first_c, (Keyway - direct) / (YARP - direct) (bar: <= 1.1):"
for p in 50 99; do
    if [ "$p" = 50 ]; then k="${P50[keyway,$first_c]}" y="${P50[yarp,$first_c]}" d="${P50[direct,$first_c]}"
    else k="${P99[keyway,$first_c]}" y="${P99[yarp,$first_c]}" d="${P99[direct,$first_c]}"; fi
    awk -v k="$k" -v y="$y" -v d="$d" -v p="$p" 'BEGIN {
        ka = k - d; ya = y - d
        if (ya > 0) r = sprintf("%.2f", ka / ya); else r = "n/a (YARP adds nothing measurable)"
        printf "  p%s: %s   (Keyway adds %.3f ms, YARP adds %.3f ms over direct %.3f ms)\n", p, r, ka, ya, d }'
done
echo
echo "Peak RSS (VmHWM) after the run: Keyway ${KW_HWM} MB, YARP ${YARP_HWM} MB, upstream ${UP_HWM} MB (Keyway bar: <= 150 MB)"
