#!/usr/bin/env bash
# bench/webrtc_latency.sh: WebRTC (WHEP) glass-to-glass latency in headless Chromium, next to
# LL-HLS (hls.js) in the same page and the same run (issue 4).
#
# Starts `livefeed serve --test-src` (640x480@30 test pattern on path `live`) on free loopback
# ports, waits for its playlist, and opens the player page http://127.0.0.1:PORT/live/ (both
# players side by side: WebRTC over WHEP and LL-HLS in hls.js low-latency mode) for PLAY_SECS
# seconds with `node web/tests/player.mjs URL PLAY_SECS` (Debian's Chromium, headless). The page
# measures every frame each player displays: display time (requestVideoFrameCallback's
# expectedDisplayTime) minus the capture time read from the frame's pixel timecode. Both players
# see the same frames of the same encoder at the same time, on the same machine.
# The first WARMUP_SECS × 30 measured frames of each player (start-up) are left out; the table
# gives n, p50, p95, p99 and max over the rest (nearest rank) per player, the frames displayed,
# and for WebRTC the jitter-buffer delay Chromium reports (getStats: jitterBufferDelay /
# jitterBufferEmittedCount over the last 1 s interval before the end), frames dropped and NACKs.
#
# Builds nothing: expects target/release/livefeed (cargo build --release), node with
# web/node_modules (npm ci in web/) and /usr/bin/chromium (scripts/install-deps installs both).
# PLAY=webrtc (or hls) opens the page with ?play=webrtc (one player only) instead: a side check
# of what the second player costs a 2-core machine; it is not the issue's same-run comparison.
# Environment: PLAY_SECS (60), WARMUP_SECS (5), BITRATE (unset: the server's default),
#              PLAY (unset: both players), OUT_DIR (a new /tmp/livefeed-bench.* dir).
# Takes about PLAY_SECS + 15 s.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PLAY_SECS=${PLAY_SECS:-60}
WARMUP_SECS=${WARMUP_SECS:-5}
BITRATE=${BITRATE:-}
PLAY=${PLAY:-}
QUERY=${PLAY:+?play=$PLAY}
case "$PLAY" in
"" | webrtc | hls) ;;
*)
    echo "error: PLAY must be empty, webrtc or hls" >&2
    exit 2
    ;;
esac
FPS=30 # the test source's frame rate (serve --test-src default)
GOAL_MS=80 # issue 4: WebRTC p50 glass-to-glass in Chromium on loopback
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"

require_bin
require_tool python3 "formatting the tables"
require_tool node "driving headless Chromium (web/tests/player.mjs)"
require_tool curl "waiting for the stream"
if [ ! -d "$ROOT/web/node_modules/playwright-core" ]; then
    echo "error: web/node_modules is missing; run 'npm ci' in web/ (or scripts/install-deps)" >&2
    exit 2
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "error: ${CHROMIUM:-/usr/bin/chromium} not found (apt-get install chromium, or set CHROMIUM)" >&2
    exit 2
fi

echo "# livefeed WebRTC and LL-HLS glass-to-glass latency in Chromium (bench/webrtc_latency.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- binary: $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- checkout at run time: $(checkout_desc) (the binary is as old as its build time above)"
echo "- machine: $(machine_desc); server, test-pattern encoder and browser share them"
echo "- browser: $("${CHROMIUM:-/usr/bin/chromium}" --version 2>/dev/null | head -1), headless; hls.js $(node -p "require('$ROOT/web/node_modules/hls.js/package.json').version" 2>/dev/null || echo '?')"
echo "- logs and raw JSON: $OUT_DIR"
echo "- warm-up left out: the first $((WARMUP_SECS * FPS)) measured frames of each player (${WARMUP_SECS} s at ${FPS} fps)"
echo

args=(--test-src)
if [ -n "$BITRATE" ]; then args+=(--bitrate "$BITRATE"); fi
# The metrics store (SQLite, --data-dir, default ./livefeed-data) goes to the output directory;
# set through the environment so that binaries older than the store ignore it.
LIVEFEED_DATA_DIR=$OUT_DIR/data start_server "$OUT_DIR/server" "${args[@]}"
server_http_port "$OUT_DIR/server"
P=$SERVER_HTTP_PORT
echo "Server: \`target/release/livefeed serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0 ${args[*]}\` with \`LIVEFEED_DATA_DIR=\$OUT_DIR/data\` (HTTP port $P, pid $SERVER_PID)"
# The playlist answers once the test pattern is being published (and starts the LL-HLS muxer,
# which the page's hls.js player needs anyway).
if ! wait_http_ok "http://127.0.0.1:$P/live/index.m3u8" 30; then
    echo
    echo "**the stream never came up** (log: $OUT_DIR/server.err)"
    exit 1
fi
echo "Player: \`node web/tests/player.mjs http://127.0.0.1:$P/live/$QUERY $PLAY_SECS\` (${PLAY:-WebRTC and LL-HLS} in one page)"
echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
status=0
(cd "$ROOT" && timeout $((PLAY_SECS + 150)) node web/tests/player.mjs \
    "http://127.0.0.1:$P/live/$QUERY" "$PLAY_SECS") \
    >"$OUT_DIR/player.json" 2>"$OUT_DIR/player.err" || status=$?
stop_server
refused=$(sed -n 's/.*HTTP request refused .*uri=\([^ ]*\) status=\([0-9]*\).*/\1 \2/p' "$OUT_DIR/server.err" | sort | uniq -c | awk '{printf "%s%s → %s (%d×)", sep, $2, $3, $1; sep="; "}')
echo "Requests the server refused meanwhile (from its log): ${refused:-none}"
echo
if [ "$status" -ne 0 ]; then
    echo "**player exited with status $status** (log: $OUT_DIR/player.err)"
    echo
fi

python3 - "$OUT_DIR/player.json" "$((WARMUP_SECS * FPS))" "$PLAY_SECS" "$GOAL_MS" "$PLAY" <<'EOF'
import json, sys
path, skip, secs, goal, only = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
try:
    doc = json.loads(open(path).read().strip().splitlines()[-1])
except (OSError, ValueError, IndexError) as e:
    print(f"**no result from the player** ({e.__class__.__name__}: {e})")
    sys.exit(1)

def rank(kept, p):
    i = min(len(kept) - 1, max(0, -(-p * len(kept) // 100) - 1))
    return kept[i]

print(f"### glass-to-glass latency (ms), {secs} s, " + (f"{only} only (?play={only})" if only else "both players in one page"))
print()
print("| player | n | p50 | p95 | p99 | max | frames displayed | measured | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
p50s = {}
for kind, name in (("webrtc", "WebRTC (WHEP)"), ("hls", "LL-HLS (hls.js)")):
    if only and kind != only:
        continue
    s = doc.get(kind) or {}
    lat = s.get("allLatencies") or []
    kept = sorted(lat[skip:])
    errors = s.get("errors") or []
    err = f"{len(errors)}: " + "; ".join(sorted(set(errors)))[:200] if errors else "none"
    if kept:
        p50s[kind] = rank(kept, 50)
        cells = [f"{rank(kept, p):.0f}" for p in (50, 95, 99)] + [f"{kept[-1]:.0f}"]
    else:
        cells = ["–"] * 4
    print(f"| {name} | {len(kept)} | {' | '.join(cells)} | {s.get('frames', '–')} | "
          f"{s.get('measured', '–')} | {err} |")
print()
w = doc.get("webrtc") or {}
jb = w.get("jitterBufferMs")
if w:
    print(f"WebRTC in Chromium (getStats, inbound-rtp video): jitter-buffer delay "
          f"{'–' if jb is None else f'{jb:.1f}'} ms per frame over the last 1 s interval before the end; "
          f"framesDropped {w.get('framesDropped', '–')}, nackCount {w.get('nackCount', '–')}; "
          f"picture {w.get('videoWidth', '?')}x{w.get('videoHeight', '?')}")
h = doc.get("hls") or {}
for kind, s in (("WebRTC", w), ("LL-HLS", h)):
    if s.get("fps") is not None:
        print(f"{kind}: {s['fps']} frames displayed in the last second before the end (the stream has 30)")
if h.get("hlsLatencyMs") is not None:
    print(f"hls.js's own view at the end: latency {h['hlsLatencyMs']:.0f} ms, target "
          f"{h.get('hlsTargetLatencyMs', 0):.0f} ms, playback rate {h.get('playbackRate', '?')}")
ce = doc.get("consoleErrors") or []
print(f"Console errors: {len(ce)}" + (": " + "; ".join(ce)[:300] if ce else ""))
print()
if only == "hls":
    pass
elif "webrtc" in p50s:
    verdict = "MET" if p50s["webrtc"] <= goal else "MISSED"
    print(f"Goal: WebRTC glass-to-glass p50 ≤ {goal:.0f} ms: {p50s['webrtc']:.0f} ms → {verdict}")
else:
    print(f"Goal: WebRTC glass-to-glass p50 ≤ {goal:.0f} ms: no WebRTC measurement → NOT SHOWN")
EOF
