#!/usr/bin/env bash
# bench/dashboard_cpu.sh: the server's extra CPU with 10 open dashboards (issue 5).
#
# One release server with the built-in 640x480@30 test pattern on `live`
# (`livefeed serve --test-src`; its encoder runs inside the server process, so it is in every
# figure and the "extra" column subtracts it). For each case, in turn, for SECS seconds after
# every page is open: the server's CPU time (utime+stime of all threads, /proc/PID/stat):
#   - baseline: no page open;
#   - PAGES dashboards without video (`/?mode=none`): the dashboard itself — the SSE state once a
#     second, the chart's store query every 2 s, the clock sync;
#   - PAGES dashboards with WebRTC video (`/?mode=webrtc`): the same plus one WHEP viewer and
#     capture→displayed samples POSTed by each page.
# Chromium runs on the same 2 cores (web/tests/open_dashboards.mjs, one window per page); its
# CPU is not counted, but its load can slow the server's threads.
# Environment: SECS (30), PAGES (10), OUT_DIR. Needs node + web/node_modules (npm ci --prefix web),
# /usr/bin/chromium.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS=${SECS:-30}
PAGES=${PAGES:-10}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"
require_bin
require_tool node "driving Chromium"
require_tool python3 "the table"
CLK_TCK=$(getconf CLK_TCK)

echo "# livefeed dashboard cost on the server (bench/dashboard_cpu.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- checkout: $(checkout_desc); binary $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- machine: $(machine_desc); server and Chromium share them"
echo "- raw output: $OUT_DIR"
echo

LIVEFEED_DATA_DIR=$OUT_DIR/data start_server "$OUT_DIR/server" --test-src
server_http_port "$OUT_DIR/server"
BASE=http://127.0.0.1:$SERVER_HTTP_PORT
wait_http_ok "$BASE/api/v1/paths/live" 20
echo "Server: \`target/release/livefeed serve --test-src --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0\` (pid $SERVER_PID)"
echo
sleep 3

# measure NAME: CPU % of one core over SECS, into $OUT_DIR/NAME.cpu
measure() {
    local c0 c1 t0 t1
    c0=$(cpu_ticks "$SERVER_PID"); t0=$(date +%s.%N)
    sleep "$SECS"
    c1=$(cpu_ticks "$SERVER_PID"); t1=$(date +%s.%N)
    python3 -c "import sys; c0,c1,t0,t1,k=map(float,sys.argv[1:]); print(f'{(c1-c0)/k/(t1-t0)*100:.2f}')" "$c0" "$c1" "$t0" "$t1" "$CLK_TCK" >"$OUT_DIR/$1.cpu"
}

# with_pages NAME QUERY: opens PAGES dashboards at /QUERY, measures once all are open.
with_pages() {
    local name=$1 query=$2
    node "$ROOT/web/tests/open_dashboards.mjs" "$BASE/$query" $((SECS + 5)) "$PAGES" \
        >"$OUT_DIR/$name.json" 2>"$OUT_DIR/$name.err" &
    local pid=$!
    BG_PIDS+=("$pid")
    for _ in $(seq 600); do
        grep -q '^open:' "$OUT_DIR/$name.err" 2>/dev/null && break
        sleep 0.1
    done
    sleep 3 # pages settle (clock sync, first chart, WHEP handshakes)
    measure "$name"
    wait "$pid" || echo "open_dashboards.mjs exited with $? for $name (see $OUT_DIR/$name.err)"
}

measure baseline
with_pages dashboards "?mode=none"
with_pages dashboards_video "?mode=webrtc"
stop_server

python3 - "$OUT_DIR" "$PAGES" "$SECS" <<'PY'
import json, os, sys
out, pages, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cpu = lambda n: float(open(os.path.join(out, n + ".cpu")).read())
base = cpu("baseline")
def pages_note(name):
    try:
        d = json.load(open(os.path.join(out, name + ".json")))["pages"]
    except (OSError, ValueError, KeyError):
        return "no result from the browser"
    ev = sorted(p["events"] for p in d)
    frames = sorted(p["players"].get("webrtc", {}).get("frames", 0) for p in d)
    errs = sum(len(p["errors"]) for p in d)
    note = f"{len(d)} pages; SSE events per page min/median {ev[0]}/{ev[len(ev)//2]}; chart points > 0 on {sum(1 for p in d if p['chartPoints'] > 0)}"
    if any(frames):
        note += f"; video frames per page min/median {frames[0]}/{frames[len(frames)//2]}"
    return note + f"; page errors {errs}"
print(f"| case ({secs} s each) | server CPU (% of one core) | extra over baseline | per dashboard | pages |")
print("|---|---:|---:|---:|---|")
print(f"| baseline: test pattern encoded and served, no page | {base:.1f} | – | – | – |")
for name, label in [("dashboards", f"{pages} dashboards, no video (`/?mode=none`)"), ("dashboards_video", f"{pages} dashboards with WebRTC video (`/?mode=webrtc`)")]:
    c = cpu(name)
    print(f"| {label} | {c:.1f} | {c - base:+.1f} | {(c - base) / pages:+.2f} | {pages_note(name)} |")
PY
