#!/usr/bin/env bash
# bench/rtsp_fanout.sh: RTSP fan-out, livefeed against gst-rtsp-server relaying the same stream,
# at 50, 200 and 500 TCP readers in one run: server CPU per reader and RSS per reader, as ratios
# (target: livefeed ≤ 0.5 × gst-rtsp-server's CPU per reader at 200 readers).
#
# For each N in READERS, each with a fresh set of processes, all on 127.0.0.1 (free ports):
#   1. `livefeed serve` (the server under test), with its admission limits raised so that N
#      loopback readers plus the relay and the publisher are let in: --max-readers-per-path,
#      --max-rtsp-sessions and --max-connections-per-address (defaults 500, 1000 and 256: all
#      of them from 127.0.0.1, so 500 readers would be refused without this) are set to
#      max(1000, max(READERS) + 100);
#   2. ffmpeg publishing 640x480 30 fps H.264 to rtsp://127.0.0.1:P/live over TCP:
#        ffmpeg -re -f lavfi -i testsrc2=size=640x480:rate=30 -c:v libx264 -preset ultrafast
#          -tune zerolatency -g 30 -b:v 2M -maxrate 2M -bufsize 1M -pix_fmt yuv420p
#          -f rtsp -rtsp_transport tcp rtsp://127.0.0.1:P/live
#      (a live source, runs for as long as the bench; ultrafast so it takes little of the CPU
#      the servers share with it);
#   3. bench/gst_rtsp_relay.py: gst-rtsp-server (python3-gi) serving /live from one shared
#      media `( rtspsrc location=rtsp://127.0.0.1:P/live protocols=tcp latency=0
#      buffer-mode=none ! rtph264depay ! rtph264pay name=pay0 pt=96 config-interval=-1 )`, i.e.
#      it reads the same stream from livefeed once, depayloads and payloads it again, and fans
#      it out (buffer-mode=none keeps the source's RTP timestamps; the listen backlog is raised
#      from gst-rtsp-server's 5 to 1024, else a batch of connects overflows it and SYNs are
#      retried after 1-7 s; nothing else is tuned: see that script); plus one `rtsp-load
#      --readers 1` kept connected to it for the whole run, so its media stays prepared between
#      measurements (gst-rtsp-server stops a shared media when its last reader leaves). So each
#      server always has exactly one reader besides the N measured: livefeed the relay,
#      gst-rtsp-server the keeper;
#   4. a probe reader (`rtsp-load --readers 1 --seconds 2`) of each server until it receives RTP;
#   5. then, for each server, one after the other (order alternates with N), never both at once:
#      a. wait SETTLE_SECS, then measure the server's idle CPU (the stream running, its one
#         extra reader, no measured reader) over IDLE_SECS;
#      b. `rtsp-load --url rtsp://127.0.0.1:PORT/live --readers N --seconds DURATION --batch
#         BATCH --watch SERVER_PID` (bench/rtsp-load: one tokio current_thread runtime, one task
#         and TCP connection per reader: OPTIONS, DESCRIBE, SETUP of every media as
#         RTP/AVP/TCP interleaved, PLAY; readers start BATCH at a time, each batch once the
#         previous one has played). When all have played, the counted window of DURATION s
#         starts for all at once; then every reader TEARDOWNs. rtsp-load samples the server's
#         utime+stime (/proc/PID/stat, all threads) and VmRSS/VmHWM (/proc/PID/status), and its
#         own, at its start, at the window's start and end (readers still connected) and after
#         the teardowns.
#   6. everything of this N is stopped (by PID).
# Figures, per server and N:
#   CPU %        server CPU time in the counted window / window length (% of one core; this
#                machine has 2). Set-up and teardown are outside it ("whole run" in the details
#                is from rtsp-load's start to its end, set-ups and teardowns included).
#   net          CPU % minus the idle CPU % of step 5a: livefeed's idle is its ingest of the
#                publisher and serving the relay; gst-rtsp-server's is its relay pipeline
#                (rtspsrc, depay, pay) and serving the keeper.
#   CPU/reader   net CPU % / readers that played (the marginal cost of one reader, % of a core).
#   RSS/reader   (VmRSS at the window's end − VmRSS at rtsp-load's start) / readers that played,
#                KiB. gst-rtsp-server's RSS includes the Python interpreter, GStreamer and its one
#                relay session; both baselines include the one extra reader. Kernel socket
#                buffers are not in RSS. Allocators keep freed memory, so the peak (VmHWM, which
#                also covers the set-up: a livefeed reader is first sent the stream from its
#                last keyframe) is shown too.
#   kbit/s       per reader, bytes read in the window (interleaved framing + RTP + RTCP) × 8 /
#                window, median and 5th percentile over the readers; gaps = RTP sequence-number
#                gaps seen by all readers (a reader that falls behind and is skipped ahead by
#                the server shows up here).
#   client CPU   rtsp-load's own CPU % in the window (it shares the 2 cores with the servers,
#                the publisher and the other server's idle cost).
#   machine      the whole machine's busy CPU % in the window (/proc/stat) and what is left of it
#                besides the server and rtsp-load: the publisher, the other server and anything
#                else running; above 30 % of a core a warning says the figures may be disturbed
#                (run it on an otherwise idle machine).
# The ratios are livefeed / gst-rtsp-server of CPU/reader (net; also raw = CPU % / readers, the
# fixed costs included) and of RSS/reader. The issue's target is judged on the net ratio at 200.
#
# Builds bench/rtsp-load itself (cargo build --release --manifest-path
# bench/rtsp-load/Cargo.toml, its own target dir, ~15 s the first time) unless RTSP_LOAD_BIN
# names a prebuilt one; the livefeed binary is not built (cargo build --release).
# Needs ffmpeg (with libx264), and for gst-rtsp-server Debian's python3-gi,
# gir1.2-gst-rtsp-server-1.0 (with gir1.2-gstreamer-1.0 and gir1.2-gst-plugins-base-1.0) and
# gstreamer1.0-plugins-good, run by GST_PYTHON (/usr/bin/python3, the interpreter python3-gi is
# built for); python3 for the tables.
# Environment: READERS ("50 200 500"), DURATION (30), IDLE_SECS (10), SETTLE_SECS (2),
#              BATCH (50), LIVEFEED_BIN (target/release/livefeed), RTSP_LOAD_BIN (a prebuilt
#              rtsp-load), GST_PYTHON (/usr/bin/python3), OUT_DIR (a new /tmp/livefeed-bench.*).
# Takes about len(READERS) × (~12 + 2 × (SETTLE_SECS + IDLE_SECS + ramp + DURATION + ~2)) s:
# ~4.5 minutes with the defaults.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READERS=${READERS:-"50 200 500"}
DURATION=${DURATION:-30}
IDLE_SECS=${IDLE_SECS:-10}
SETTLE_SECS=${SETTLE_SECS:-2}
BATCH=${BATCH:-50}
GST_PYTHON=${GST_PYTHON:-/usr/bin/python3}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"

require_bin
require_tool python3 "formatting the tables"
require_tool ffmpeg "publishing the stream"
if ! "$GST_PYTHON" -c 'import gi; gi.require_version("GstRtspServer", "1.0"); gi.require_version("GstRtsp", "1.0")' 2>/dev/null; then
    echo "error: $GST_PYTHON cannot load GstRtspServer through python3-gi" >&2
    echo "(Debian: apt-get install -y python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good)" >&2
    exit 2
fi
for n in $READERS; do
    case "$n" in '' | *[!0-9]*)
        echo "error: READERS must be numbers" >&2
        exit 2
        ;;
    esac
done
load_bin rtsp-load "$OUT_DIR" "${RTSP_LOAD_BIN:-}" RTSP_LOAD_BIN
CLK_TCK=$(getconf CLK_TCK)
MAX_N=0
for n in $READERS; do
    if [ "$n" -gt "$MAX_N" ]; then MAX_N=$n; fi
done
LIMIT=$((MAX_N + 100))
if [ "$LIMIT" -lt 1000 ]; then LIMIT=1000; fi
# One socket per reader in rtsp-load and in the server, all of them started from this shell.
need=$((MAX_N * 2 + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
# Upper bound of one N's processes' life (publisher, relay, keeper): both measurements and
# their set-up, with room to spare.
STACK_SECS=$((2 * (SETTLE_SECS + IDLE_SECS + DURATION + MAX_N / BATCH * 30 + 60) + 120))

kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
now_s() { date +%s.%N; }

# probe URL TAG: waits (at most 10 tries of ~2.5 s) until one reader receives RTP; returns 1 if
# it never does.
probe() {
    local url=$1 tag=$2 try
    for try in $(seq 10); do
        timeout 30 "$LOADGEN" --url "$url" --readers 1 --seconds 2 --quiet \
            >"$OUT_DIR/$tag-probe.json" 2>"$OUT_DIR/$tag-probe.err" || true
        if python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["readers_with_rtp"] == 1 else 1)' \
            "$OUT_DIR/$tag-probe.json" 2>/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# wait_line FILE REGEX PID: waits (at most ~10 s) until FILE has a line matching REGEX while PID
# lives; returns 1 otherwise.
wait_line() {
    local i
    for i in $(seq 100); do
        if grep -q "$2" "$1" 2>/dev/null; then return 0; fi
        if ! kill -0 "$3" 2>/dev/null; then return 1; fi
        sleep 0.1
    done
    return 1
}

echo "# RTSP fan-out: livefeed against gst-rtsp-server (bench/rtsp_fanout.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- binary: $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- checkout at run time: $(checkout_desc) (the binary is as old as its build time above)"
echo "- machine: $(machine_desc); servers, publisher and load client share them"
echo "- gst-rtsp-server: $("$GST_PYTHON" -c 'import gi; gi.require_version("Gst", "1.0"); from gi.repository import Gst; Gst.init(None); print(Gst.version_string())' 2>/dev/null) via python3-gi ($GST_PYTHON)"
echo "- stream: ffmpeg $(ffmpeg -hide_banner -version | head -1 | cut -d' ' -f3) testsrc2 640x480 30 fps, libx264 ultrafast zerolatency, -g 30, 2 Mbit/s (-maxrate 2M -bufsize 1M), published to livefeed over TCP"
echo "- load client: bench/rtsp-load (one thread; TCP interleaved; batches of $BATCH), ${DURATION} s counted window with every reader playing"
echo "- livefeed limits raised: --max-readers-per-path $LIMIT --max-rtsp-sessions $LIMIT --max-connections-per-address $LIMIT"
echo "- logs and raw JSON: $OUT_DIR"
echo

ROWS=$OUT_DIR/rows.jsonl
: >"$ROWS"
idx=0
for n in $READERS; do
    idx=$((idx + 1))
    tag="n$n"
    echo "## $n readers"
    echo

    # The stack of this N: livefeed, the publisher, the gst relay and its keeper.
    LIVEFEED_DATA_DIR=$OUT_DIR/$tag-data start_server "$OUT_DIR/$tag-livefeed" \
        --max-readers-per-path "$LIMIT" --max-rtsp-sessions "$LIMIT" --max-connections-per-address "$LIMIT"
    lf_pid=$SERVER_PID
    lf_url="rtsp://127.0.0.1:$SERVER_PORT/live"
    timeout "$STACK_SECS" ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi \
        -i testsrc2=size=640x480:rate=30 -c:v libx264 -preset ultrafast -tune zerolatency \
        -g 30 -b:v 2M -maxrate 2M -bufsize 1M -pix_fmt yuv420p \
        -f rtsp -rtsp_transport tcp "$lf_url" >"$OUT_DIR/$tag-ffmpeg.out" 2>"$OUT_DIR/$tag-ffmpeg.err" &
    pub_pid=$!
    BG_PIDS+=("$pub_pid")
    if ! probe "$lf_url" "$tag-livefeed"; then
        echo "**livefeed: no RTP reached a probe reader** (logs: $OUT_DIR/$tag-livefeed.err, $tag-ffmpeg.err, $tag-livefeed-probe.*)"
        echo
        stop_server
        kill_tree "$pub_pid"
        continue
    fi
    gst_port=$(free_port)
    timeout "$STACK_SECS" "$GST_PYTHON" "$BENCH_DIR/gst_rtsp_relay.py" --port "$gst_port" --source "$lf_url" \
        >"$OUT_DIR/$tag-gst.out" 2>"$OUT_DIR/$tag-gst.err" &
    gst_timeout_pid=$!
    BG_PIDS+=("$gst_timeout_pid")
    gst_url="rtsp://127.0.0.1:$gst_port/live"
    gst_pid=
    if wait_line "$OUT_DIR/$tag-gst.out" '^gst-rtsp-server relaying' "$gst_timeout_pid"; then
        gst_pid=$(ps -o pid= --ppid "$gst_timeout_pid" | head -1 | tr -d ' ')
    fi
    if [ -z "$gst_pid" ]; then
        echo "**gst_rtsp_relay.py did not start** (log: $OUT_DIR/$tag-gst.err)"
        echo
        stop_server
        kill_tree "$pub_pid"
        kill_tree "$gst_timeout_pid"
        continue
    fi
    timeout "$STACK_SECS" "$LOADGEN" --url "$gst_url" --readers 1 --seconds "$STACK_SECS" --quiet \
        >"$OUT_DIR/$tag-gst-keeper.json" 2>"$OUT_DIR/$tag-gst-keeper.err" &
    keeper_pid=$!
    BG_PIDS+=("$keeper_pid")
    if ! probe "$gst_url" "$tag-gst"; then
        echo "**gst-rtsp-server: no RTP reached a probe reader** (logs: $OUT_DIR/$tag-gst.err, $tag-gst-probe.*)"
        echo
    fi

    if [ $((idx % 2)) -eq 1 ]; then order="livefeed gst"; else order="gst livefeed"; fi
    for srv in $order; do
        if [ "$srv" = livefeed ]; then pid=$lf_pid url=$lf_url; else pid=$gst_pid url=$gst_url; fi
        if ! kill -0 "$pid" 2>/dev/null || ! kill -0 "$pub_pid" 2>/dev/null; then
            echo "**$srv: the server or the publisher is gone; skipped**"
            echo
            continue
        fi
        sleep "$SETTLE_SECS"
        i0=$(cpu_ticks "$pid")
        w0=$(now_s)
        sleep "$IDLE_SECS"
        i1=$(cpu_ticks "$pid")
        w1=$(now_s)
        load0=$(cut -d' ' -f1-3 /proc/loadavg)
        status=0
        timeout $((DURATION + MAX_N / BATCH * 30 + 120)) "$LOADGEN" --url "$url" --readers "$n" \
            --seconds "$DURATION" --batch "$BATCH" --watch "$pid" \
            >"$OUT_DIR/$tag-$srv-load.json" 2>"$OUT_DIR/$tag-$srv-load.err" || status=$?
        python3 - "$OUT_DIR/$tag-$srv-load.json" "$ROWS" "$srv" "$n" "$CLK_TCK" "$i0" "$i1" "$w0" "$w1" \
            "$status" "$load0" "$(kib "$pid" VmHWM 2>/dev/null || echo 0)" <<'EOF'
import json, os, sys
path, rows, srv, n, tck, i0, i1, w0, w1, status, load0, hwm_after = sys.argv[1:]
# Expected rest: the x264 ultrafast publisher (~5-10 %) and the other server's idle (~1-2 %).
REST_WARN = 30.0
n, tck = int(n), float(tck)
idle = (int(i1) - int(i0)) / tck / (float(w1) - float(w0)) * 100
row = {"server": srv, "n": n, "idle_pct": idle, "status": int(status), "load_before": load0}
try:
    d = json.load(open(path))
except (OSError, ValueError) as ex:
    row["error"] = f"no JSON from rtsp-load ({ex.__class__.__name__}, exit status {status})"
    open(rows, "a").write(json.dumps(row) + "\n")
    print(f"- {srv}: {row['error']}")
    sys.exit(0)
me, server = d["processes"][0], d["processes"][1]
win = d["window_s"]
played = d["readers_played"]

def ticks_s(p, a, b):
    x, y = p[a]["cpu_ticks"], p[b]["cpu_ticks"]
    return None if x is None or y is None else (y - x) / tck

def pct(secs, over):
    return None if secs is None else secs / over * 100

rss0, rss1 = server["start"]["rss_kib"], server["window_end"]["rss_kib"]
row.update(
    played=played, failures=d["failures"], errors=d["errors"],
    cpu_pct=pct(ticks_s(server, "window_start", "window_end"), win),
    whole_cpu_s=ticks_s(server, "start", "end"), wall_s=d["wall_s"], ramp_s=d["ramp_s"],
    client_pct=pct(ticks_s(me, "window_start", "window_end"), win),
    client_whole_s=ticks_s(me, "start", "end"),
    rss0=rss0, rss1=rss1, hwm=max(server["end"]["hwm_kib"] or 0, int(hwm_after or 0)),
    kbps_median=d["kbps_median"], kbps_p5=d["kbps_p5"], gaps=d["seq_gaps"], lost=d["lost_packets"],
    rtp=d["rtp_packets"], setup_ms_median=d["setup_ms_median"], setup_ms_max=d["setup_ms_max"],
    machine_pct=pct(None if d.get("machine_busy_ticks_window") is None else d["machine_busy_ticks_window"] / tck, win),
)
row["rest_pct"] = (None if None in (row["machine_pct"], row["cpu_pct"], row["client_pct"])
                   else row["machine_pct"] - row["cpu_pct"] - row["client_pct"])
row["net_pct"] = None if row["cpu_pct"] is None else row["cpu_pct"] - idle
row["cpu_per_reader"] = row["net_pct"] / played if played and row["net_pct"] is not None else None
row["rss_per_reader_kib"] = (rss1 - rss0) / played if played and rss0 and rss1 else None
open(rows, "a").write(json.dumps(row) + "\n")
f = lambda v, fmt: "–" if v is None else format(v, fmt)
mib = lambda k: "–" if k is None else f"{k / 1024:.1f}"
errors = "; ".join(f"{k} ×{v}" for k, v in d["errors"].items())[:400]
print(f"- **{srv}**: {played}/{n} readers played" + (f", {d['failures']} failed: {errors}" if d["failures"] else "")
      + f"; ramp-up {d['ramp_s']:.1f} s (set-up per reader median {d['setup_ms_median']} ms, max {d['setup_ms_max']} ms)")
print(f"  - server CPU in the {win:.1f} s window: {f(row['cpu_pct'], '.1f')} % of one core, idle before {idle:.1f} %, "
      f"net {f(row['net_pct'], '.1f')} % = {f(row['cpu_per_reader'], '.4f')} % per reader; whole run "
      f"{f(row['whole_cpu_s'], '.2f')} s CPU over {d['wall_s']:.1f} s")
print(f"  - server RSS {mib(rss0)} MiB at start → {mib(rss1)} MiB at the window's end "
      f"(peak {mib(row['hwm'])} MiB): {f(row['rss_per_reader_kib'], '.1f')} KiB per reader")
print(f"  - per reader: {d['kbps_median']} kbit/s median, {d['kbps_p5']} p5 (min {d['kbps_min']}, max {d['kbps_max']}); "
      f"{d['rtp_packets']} RTP packets in all, {d['seq_gaps']} sequence gaps ({d['lost_packets']} packets skipped)")
print(f"  - load client: {f(row['client_pct'], '.1f')} % of one core in the window, {f(row['client_whole_s'], '.2f')} s CPU "
      f"in all; load average before: {load0}")
print(f"  - whole machine in the window: {f(row['machine_pct'], '.1f')} % busy (of {100 * (os.cpu_count() or 1)} %): "
      f"server + load client + {f(row['rest_pct'], '.1f')} % for the rest (publisher, the other server, other processes)")
if row["rest_pct"] is not None and row["rest_pct"] > REST_WARN:
    print(f"  - **warning: other processes took {row['rest_pct']:.1f} % of a core during the window; the figures may be disturbed**")
EOF
    done
    echo
    kill_tree "$keeper_pid"
    kill_tree "$gst_timeout_pid"
    kill_tree "$pub_pid"
    stop_server
    wait "$keeper_pid" "$gst_timeout_pid" "$pub_pid" 2>/dev/null || true
done

echo "## summary: ${DURATION} s window, livefeed / gst-rtsp-server"
echo
python3 - "$ROWS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["server"], r["n"]): r for r in rows}
ns = sorted({r["n"] for r in rows})
f = lambda v, fmt: "–" if v is None else format(v, fmt)
mib = lambda k: "–" if not k else f"{k / 1024:.1f}"
print("| readers | server | played | kbit/s per reader (median / p5) | RTP gaps | CPU % (window) | idle % | net CPU % per reader | RSS MiB start → window end (peak) | RSS KiB per reader | client CPU % |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
for n in ns:
    for s in ("livefeed", "gst"):
        r = by.get((s, n))
        name = "livefeed" if s == "livefeed" else "gst-rtsp-server"
        if r is None or "error" in r:
            print(f"| {n} | {name} | – | – | – | – | – | – | – | – | {(r or {}).get('error', 'not run')} |")
            continue
        print(f"| {n} | {name} | {r['played']}/{n} | {f(r['kbps_median'], '.0f')} / {f(r['kbps_p5'], '.0f')} | {r['gaps']} | "
              f"{f(r['cpu_pct'], '.1f')} | {r['idle_pct']:.1f} | {f(r['cpu_per_reader'], '.4f')} | "
              f"{mib(r['rss0'])} → {mib(r['rss1'])} ({mib(r['hwm'])}) | {f(r['rss_per_reader_kib'], '.1f')} | "
              f"{f(r['client_pct'], '.1f')} |")
print()
print("| readers | CPU per reader (net of idle), livefeed / gst | CPU per reader (raw: CPU % / readers) | RSS per reader, livefeed / gst |")
print("|---:|---:|---:|---:|")
ratio = lambda a, b: None if a is None or b is None or b <= 0 else a / b
target = None
for n in ns:
    a, b = by.get(("livefeed", n)), by.get(("gst", n))
    if not a or not b or "error" in a or "error" in b:
        print(f"| {n} | – | – | – |")
        continue
    c = ratio(a["cpu_per_reader"], b["cpu_per_reader"])
    raw = lambda r: None if r["cpu_pct"] is None or not r["played"] else r["cpu_pct"] / r["played"]
    cr = ratio(raw(a), raw(b))
    m = ratio(a["rss_per_reader_kib"], b["rss_per_reader_kib"])
    print(f"| {n} | {f(c, '.2f')}× ({f(a['cpu_per_reader'], '.4f')} / {f(b['cpu_per_reader'], '.4f')} % of a core) | "
          f"{f(cr, '.2f')}× ({f(raw(a), '.4f')} / {f(raw(b), '.4f')}) | "
          f"{f(m, '.2f')}× ({f(a['rss_per_reader_kib'], '.1f')} / {f(b['rss_per_reader_kib'], '.1f')} KiB) |")
    if n == 200:
        target = c
print()
print("CPU per reader (net) is (CPU % in the window − idle CPU %) / readers, % of one core; idle = the stream running,")
print("one extra reader, no measured reader. Raw is CPU % in the window / readers, fixed costs included.")
print("RSS per reader is VmRSS growth from rtsp-load's start to the end of the window (readers connected) / readers that played.")
if target is not None:
    print(f"Target (issue): livefeed ≤ 0.5 × gst-rtsp-server's CPU per reader at 200 readers: "
          f"{target:.2f}× → {'met' if target <= 0.5 else 'NOT met'}.")
EOF
