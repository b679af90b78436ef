#!/usr/bin/env bash
# bench/hls_latency.sh: hls.js glass-to-glass latency in headless Chromium (issue 3).
#
# For each part duration in SETTINGS ("default" = no flag, i.e. the server's default 0.1 s; or
# seconds, passed as --part-duration), starts `livefeed serve --test-src` (640x480@30 test
# pattern on path `live`) on free loopback ports, waits for its playlist, and plays
# http://127.0.0.1:PORT/live/?play=hls for PLAY_SECS seconds with
# `node web/tests/player.mjs URL PLAY_SECS` (Debian's Chromium, headless, hls.js in low-latency
# mode; `?play=hls` keeps a page that also has a WebRTC player to hls.js only). The page
# measures every displayed frame: display time (requestVideoFrameCallback's
# expectedDisplayTime) minus the capture time read from the frame's pixel timecode.
# The first WARMUP_SECS × 30 measured frames (the player's start-up) are left out; the table
# gives n, p50, p95, p99 and max over the rest (nearest rank), and the frames displayed.
#
# Builds nothing: expects target/release/livefeed (cargo build --release), node with
# web/node_modules (npm ci in web/) and /usr/bin/chromium (scripts/install-deps installs both).
# Environment: SETTINGS ("default 0.2 0.5"; a setting may repeat, each is a fresh server and
#              player session), PLAY_SECS (60), WARMUP_SECS (5),
#              OUT_DIR (a new /tmp/livefeed-bench.* dir).
# Takes about len(SETTINGS) × (PLAY_SECS + ~10) s: ~3.5 minutes with the defaults.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SETTINGS=${SETTINGS:-"default 0.2 0.5"}
PLAY_SECS=${PLAY_SECS:-60}
WARMUP_SECS=${WARMUP_SECS:-5}
FPS=30 # the test source's frame rate (serve --test-src default)
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"

require_bin
require_tool python3 "formatting the tables"
require_tool node "driving headless Chromium (web/tests/player.mjs)"
require_tool curl "waiting for the playlist"
if [ ! -d "$ROOT/web/node_modules/playwright-core" ]; then
    echo "error: web/node_modules is missing; run 'npm ci' in web/ (or scripts/install-deps)" >&2
    exit 2
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "error: ${CHROMIUM:-/usr/bin/chromium} not found (apt-get install chromium, or set CHROMIUM)" >&2
    exit 2
fi

echo "# livefeed LL-HLS glass-to-glass latency in hls.js (bench/hls_latency.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- binary: $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- checkout at run time: $(checkout_desc) (the binary is as old as its build time above)"
echo "- machine: $(machine_desc)"
echo "- browser: $("${CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null | head -1), headless; hls.js $(node -p "require('$ROOT/web/node_modules/hls.js/package.json').version" 2>/dev/null || echo '?')"
echo "- logs and raw JSON: $OUT_DIR"
echo "- warm-up left out: the first $((WARMUP_SECS * FPS)) measured frames of each run (${WARMUP_SECS} s at ${FPS} fps)"
echo

rows=()
run=0
for setting in $SETTINGS; do
    run=$((run + 1))
    tag="hls-$run-$setting" # a setting may be repeated: every player session starts afresh
    args=(--test-src)
    if [ "$setting" != default ]; then args+=(--part-duration "$setting"); fi
    # Its own metrics store in OUT_DIR, not ./livefeed-data.
    start_server "$OUT_DIR/$tag-server" "${args[@]}" --data-dir "$OUT_DIR/$tag-data"
    server_http_port "$OUT_DIR/$tag-server"
    P=$SERVER_HTTP_PORT
    echo "### part duration: $setting"
    echo
    echo "Server: \`target/release/livefeed serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0 ${args[*]} --data-dir \$OUT_DIR/$tag-data\` (HTTP port $P, pid $SERVER_PID)"
    if ! wait_http_ok "http://127.0.0.1:$P/live/index.m3u8" 30; then
        echo
        echo "**the playlist never answered** (log: $OUT_DIR/$tag-server.err)"
        echo
        stop_server
        rows+=("| $setting | – | – | – | – | – | – | – | no playlist |")
        continue
    fi
    curl -fsS --max-time 5 "http://127.0.0.1:$P/live/index.m3u8" >"$OUT_DIR/$tag-first.m3u8" || true
    echo "Playlist: \`$(grep -E '^#EXT-X-(PART-INF|SERVER-CONTROL)' "$OUT_DIR/$tag-first.m3u8" | tr '\n' ' ' | sed 's/ $//')\`"
    echo "Player: \`node web/tests/player.mjs http://127.0.0.1:$P/live/?play=hls $PLAY_SECS\`"
    echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    status=0
    (cd "$ROOT" && timeout $((PLAY_SECS + 150)) node web/tests/player.mjs \
        "http://127.0.0.1:$P/live/?play=hls" "$PLAY_SECS") \
        >"$OUT_DIR/$tag-player.json" 2>"$OUT_DIR/$tag-player.err" || status=$?
    stop_server
    if [ "$status" -ne 0 ]; then
        echo "**player exited with status $status** (log: $OUT_DIR/$tag-player.err)"
        echo
    fi
    row=$(python3 - "$OUT_DIR/$tag-player.json" "$setting" "$((WARMUP_SECS * FPS))" "$OUT_DIR/$tag-first.m3u8" <<'EOF'
import json, sys
path, setting, skip, playlist = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
target = "?"
try:
    for line in open(playlist):
        if line.startswith("#EXT-X-PART-INF:PART-TARGET="):
            target = line.split("=", 1)[1].strip()
except OSError:
    pass
try:
    doc = json.loads(open(path).read().strip().splitlines()[-1])
except (OSError, ValueError, IndexError) as e:
    print(f"| {setting} | {target} | – | – | – | – | – | – | no result ({e.__class__.__name__}) |")
    sys.exit(0)
# player.mjs prints the page's stats at the top level, or per player ("hls", "webrtc").
stats = doc.get("hls", doc)
lat = stats.get("allLatencies") or []
kept = sorted(lat[skip:])
def rank(p):
    if not kept:
        return "–"
    i = min(len(kept) - 1, max(0, -(-p * len(kept) // 100) - 1))
    return f"{kept[i]:.0f}"
notes = []
errors = stats.get("errors") or []
if errors:
    notes.append(f"{len(errors)} hls.js errors: " + "; ".join(sorted(set(errors)))[:200])
if stats.get("hlsTargetLatencyMs") is not None:
    notes.append("hls.js at the end: latency {:.0f} ms, target {:.0f} ms, rate {}".format(
        stats.get("hlsLatencyMs") or 0, stats["hlsTargetLatencyMs"], stats.get("playbackRate")))
if doc.get("consoleErrors"):
    notes.append(f"{len(doc['consoleErrors'])} console errors")
print(f"| {setting} | {target} | {len(kept)} | {rank(50)} | {rank(95)} | {rank(99)} | "
      f"{(f'{kept[-1]:.0f}' if kept else '–')} | {stats.get('frames', '–')} | {'; '.join(notes) or 'none'} |")
EOF
)
    rows+=("$row")
    echo "$row" | python3 -c "import sys; c=[x.strip() for x in sys.stdin.read().split('|')[1:-1]]; print(f'Result: n={c[2]} p50={c[3]} ms p95={c[4]} ms p99={c[5]} ms max={c[6]} ms, frames displayed {c[7]}, notes: {c[8]}')"
    echo
done

echo "### summary: glass-to-glass latency in hls.js (ms), ${PLAY_SECS} s per setting"
echo
echo "| part duration | PART-TARGET (s) | n | p50 | p95 | p99 | max | frames displayed | errors / notes |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
echo
for default_p50 in $(printf '%s\n' "${rows[@]}" | awk -F'|' '$2 ~ /^ default / {gsub(/ /, "", $5); print $5}'); do
    if [ "$default_p50" = "–" ]; then continue; fi
    if [ "$default_p50" -le 500 ]; then verdict=MET; else verdict=MISSED; fi
    echo "Goal: p50 ≤ 500 ms with the defaults: ${default_p50} ms → $verdict"
done
