#!/usr/bin/env bash
# bench/abuse.sh BEFORE_BIN AFTER_BIN: holding under abuse (issue 12), two livefeed binaries side
# by side in one run (e.g. the build of 704c03a, before the hardening, and of HEAD).
#
# For each binary, a fresh `BIN serve --test-src --data-dir DIR` on free 127.0.0.1 ports:
#
# 1. Metrics flood, FLOOD_SECS (20): two clients bound to 127.0.0.2 and 127.0.0.3 POST batches
#    of BATCH (400) samples to /api/v1/metrics (application/json, < 64 KiB) over keep-alive
#    connections, each as soon as the last one is answered; samples accepted (200) and refused
#    (429) per second. Meanwhile a legitimate client on 127.0.0.1 POSTs 1 sample every 100 ms
#    and GETs the dashboard's chart query (/api/v1/metrics?path=flood, default range) every
#    500 ms: latency p50/p99/max of each. Then the SQLite file's size (metrics.sqlite3 + -wal)
#    and the server's CPU over the flood.
# 2. Idle-connection flood: the server under `prlimit --nofile=NOFILE:NOFILE` (1024); IDLE_HTTP
#    (1300) connections to the HTTP port from 127.0.0.2 that never send a byte, then IDLE_RTSP
#    (300) to the RTSP port from 127.0.0.3, all held; HOLD_SECS (3) later, the server's open fds
#    (/proc/PID/fd) and a fresh client on 127.0.0.1: GET /api/v1/paths and an RTSP OPTIONS,
#    TRIES (5) of each (one a second, each on a new connection, PROBE_TIMEOUT (10) s each),
#    time until the whole answer is read, p50/max; whether the server's stderr says "Too many
#    open files", and how many log lines it wrote during the step. Then every connection is
#    closed and GET /api/v1/time checks the server still answers. About 25 s per binary.
#
# Prints the environment and one markdown table per scenario, before and after side by side.
# Environment: FLOOD_SECS, BATCH, IDLE_HTTP, IDLE_RTSP, NOFILE, HOLD_SECS, TRIES,
# PROBE_TIMEOUT, OUT_DIR (a new /tmp/livefeed-bench.* dir: server logs, raw JSON).
# Needs python3, curl, prlimit (util-linux). Takes about 2 minutes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ $# -ne 2 ]; then
    echo "usage: $0 BEFORE_BIN AFTER_BIN   (two livefeed binaries, e.g. built from 704c03a and HEAD)" >&2
    exit 2
fi
BEFORE_BIN=$(realpath "$1")
AFTER_BIN=$(realpath "$2")
for b in "$BEFORE_BIN" "$AFTER_BIN"; do
    if [ ! -x "$b" ]; then
        echo "error: $b is not an executable livefeed binary" >&2
        exit 2
    fi
done
FLOOD_SECS=${FLOOD_SECS:-20}
BATCH=${BATCH:-400}
IDLE_HTTP=${IDLE_HTTP:-1300}
IDLE_RTSP=${IDLE_RTSP:-300}
NOFILE=${NOFILE:-1024}
HOLD_SECS=${HOLD_SECS:-3}
TRIES=${TRIES:-5}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-10}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"
require_tool python3 "the load clients"
require_tool curl "the readiness checks"
require_tool prlimit "the open-file limit of the idle-connection flood"
CLK_TCK=$(getconf CLK_TCK)
PY=$BENCH_DIR/abuse.py

# start_livefeed PREFIX DATA_DIR COMMAND...: runs COMMAND serve ... (COMMAND ends with the
# binary, e.g. `prlimit --nofile=1024:1024 -- BIN`, which execs it: same PID) in DATA_DIR's
# parent, reads both ports from its stdout. Sets SERVER_PID, RTSP_PORT, HTTP_PORT.
start_livefeed() {
    local prefix=$1 data=$2 i
    shift 2
    mkdir -p "$data"
    (cd "$(dirname "$data")" && exec "$@" serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 \
        --webrtc-address 127.0.0.1:0 --data-dir "$data" --test-src) >"$prefix.out" 2>"$prefix.err" &
    SERVER_PID=$!
    BG_PIDS+=("$SERVER_PID")
    sleep 0.2
    if [ "$(readlink "/proc/$SERVER_PID/exe" 2>/dev/null)" != "$(realpath "${@: -1}")" ]; then
        # bash kept a parent process: the server is its child
        SERVER_PID=$(ps -o pid= --ppid "$SERVER_PID" | head -1 | tr -d ' ')
        BG_PIDS+=("$SERVER_PID")
    fi
    RTSP_PORT= HTTP_PORT=
    for i in $(seq 100); do # at most ~10 s
        RTSP_PORT=$(sed -n 's/^livefeed serving RTSP on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$prefix.out" | head -1)
        HTTP_PORT=$(sed -n 's/^livefeed serving HTTP on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$prefix.out" | head -1)
        if [ -n "$RTSP_PORT" ] && [ -n "$HTTP_PORT" ]; then break; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [ -z "$RTSP_PORT" ] || [ -z "$HTTP_PORT" ] || ! wait_http_ok "http://127.0.0.1:$HTTP_PORT/api/v1/time" 10; then
        echo "error: the server did not come up; see $prefix.out and $prefix.err" >&2
        exit 1
    fi
}

# stop_livefeed: SIGTERM, at most 5 s, then SIGKILL (our own PID only).
stop_livefeed() {
    local i
    kill "$SERVER_PID" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

now_s() { date +%s.%N; }

# flood LABEL BIN: scenario 1; writes OUT_DIR/LABEL/flood.json.
flood() {
    local label=$1 bin=$2 dir=$OUT_DIR/$1 c0 c1 t0 t1 pids=() p db
    mkdir -p "$dir"
    start_livefeed "$dir/flood-server" "$dir/flood-data" "$bin"
    sleep 1
    c0=$(cpu_ticks "$SERVER_PID")
    t0=$(now_s)
    timeout $((FLOOD_SECS + 30)) python3 "$PY" flooder "$HTTP_PORT" 127.0.0.2 "$FLOOD_SECS" "$BATCH" "$dir/flooder-2.json" &
    pids+=($!)
    timeout $((FLOOD_SECS + 30)) python3 "$PY" flooder "$HTTP_PORT" 127.0.0.3 "$FLOOD_SECS" "$BATCH" "$dir/flooder-3.json" &
    pids+=($!)
    timeout $((FLOOD_SECS + 30)) python3 "$PY" legit "$HTTP_PORT" "$FLOOD_SECS" 100 500 "$dir/legit.json" &
    pids+=($!)
    BG_PIDS+=("${pids[@]}")
    for p in "${pids[@]}"; do wait "$p"; done
    c1=$(cpu_ticks "$SERVER_PID")
    t1=$(now_s)
    db=0
    for f in "$dir/flood-data/metrics.sqlite3" "$dir/flood-data/metrics.sqlite3-wal"; do
        if [ -f "$f" ]; then db=$((db + $(stat -c %s "$f"))); fi
    done
    python3 -c 'import json,sys; c0,c1,t0,t1,tck=map(float,sys.argv[1:6]); json.dump({"db_bytes":int(sys.argv[6]),"cpu_pct":(c1-c0)/tck/(t1-t0)*100,"batch":int(sys.argv[7])},open(sys.argv[8],"w"))' \
        "$c0" "$c1" "$t0" "$t1" "$CLK_TCK" "$db" "$BATCH" "$dir/flood-server.json"
    python3 "$PY" flood-summary "$dir/flood.json" "$dir/flooder-2.json" "$dir/flooder-3.json" -- "$dir/legit.json" "$dir/flood-server.json"
    stop_livefeed
}

# idle LABEL BIN: scenario 2; writes OUT_DIR/LABEL/idle.json.
idle() {
    local label=$1 bin=$2 dir=$OUT_DIR/$1 lines0 lines1 emfile alive limit t
    mkdir -p "$dir"
    start_livefeed "$dir/idle-server" "$dir/idle-data" prlimit --nofile="$NOFILE:$NOFILE" -- "$bin"
    limit=$(awk '/^Max open files/ {print $4 ":" $5}' "/proc/$SERVER_PID/limits")
    sleep 1
    lines0=$(wc -l <"$dir/idle-server.err")
    timeout 60 python3 "$PY" idle "$SERVER_PID" "$HTTP_PORT" "$RTSP_PORT" "$IDLE_HTTP" "$IDLE_RTSP" \
        "$HOLD_SECS" "$TRIES" "$PROBE_TIMEOUT" "$dir/idle-raw.json"
    if t=$(curl -fsS -o /dev/null --max-time 5 -w '%{time_total}' "http://127.0.0.1:$HTTP_PORT/api/v1/time" 2>/dev/null); then
        alive="yes ($(python3 -c "print(f'{float(\"$t\") * 1000:,.1f}')") ms)"
    else
        alive="no (5 s)"
    fi
    lines1=$(wc -l <"$dir/idle-server.err")
    emfile=$(grep -c 'Too many open files' "$dir/idle-server.err" || true)
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.update(nofile=int(sys.argv[2]),limit=sys.argv[3],n_http=int(sys.argv[4]),n_rtsp=int(sys.argv[5]),log_lines=int(sys.argv[6]),emfile_lines=int(sys.argv[7]),alive_after=sys.argv[8]); json.dump(d,open(sys.argv[9],"w"),indent=1)' \
        "$dir/idle-raw.json" "$NOFILE" "$limit" "$IDLE_HTTP" "$IDLE_RTSP" $((lines1 - lines0)) "$emfile" "$alive" "$dir/idle.json"
    stop_livefeed
}

bin_desc() { echo "\`$1\` (built $(stat -c '%y' "$1" | cut -d. -f1))"; }

echo "# livefeed holding under abuse (bench/abuse.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- before: $(bin_desc "$BEFORE_BIN")"
echo "- after: $(bin_desc "$AFTER_BIN")"
echo "- checkout the script ran from: $(checkout_desc)"
echo "- machine: $(machine_desc); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- server: \`BIN serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0 --data-dir DIR --test-src\` (defaults otherwise), a fresh one per scenario and binary"
echo "- raw output and server logs: $OUT_DIR"
echo

flood before "$BEFORE_BIN"
flood after "$AFTER_BIN"
idle before "$BEFORE_BIN"
idle after "$AFTER_BIN"

python3 "$PY" tables "$OUT_DIR/before" "$OUT_DIR/after"
echo
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
