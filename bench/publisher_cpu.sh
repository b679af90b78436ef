#!/usr/bin/env bash
# bench/publisher_cpu.sh: publisher CPU cost, livefeed vs ffmpeg/libx264 (issue 2).
#
# Starts one `livefeed serve` on 127.0.0.1 (a free port chosen by the OS), then, one after the
# other (never concurrently, so they do not steal each other's core), publishes DURATION
# seconds of 1280x720@30 into it with
#   (a) livefeed publish --url rtsp://127.0.0.1:P/lf --resolution 1280x720 --framerate 30
#                        --bitrate 4000 --duration DURATION --json
#   (b) ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30
#              -t DURATION -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p
#              -f rtsp -rtsp_transport tcp rtsp://127.0.0.1:P/ff
# REPEAT times (alternating which goes first), measuring each process's CPU seconds
# (user + sys, children included) with /usr/bin/time. Prints every run, the medians and the
# ratio livefeed / ffmpeg. Unless PROBE_BITRATE=0 it then measures what bitrate each publisher
# actually produced, in a separate short run with one `ffmpeg -c copy` reader.
#
# SOURCE=testsrc2 is the same comparison on identical pictures: one ffmpeg makes testsrc2
# frames in real time (-re ... -f yuv4mpegpipe -) and pipes them into either publisher
# (`livefeed publish --input -` or `ffmpeg -f yuv4mpegpipe -i - <same libx264 options>`); only
# the publisher is timed, so picture generation is left out of both figures.
#
# Builds nothing: expects target/release/livefeed (cargo build --release).
# Environment: DURATION (30), REPEAT (3), SOURCE (pattern | testsrc2), PROBE_BITRATE (1),
#              PROBE_SECS (10), OUT_DIR (a new /tmp/livefeed-bench.* dir).
# Takes about REPEAT × 2 × (DURATION + 3) s, plus 2 × (PROBE_SECS + 6) s for the probe.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-30}
REPEAT=${REPEAT:-3}
SOURCE=${SOURCE:-pattern}
case "$SOURCE" in pattern | testsrc2) ;; *) echo "error: SOURCE must be pattern or testsrc2" >&2; exit 2 ;; esac
PROBE_BITRATE=${PROBE_BITRATE:-1}
PROBE_SECS=${PROBE_SECS:-10}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"

require_bin
require_tool python3 "computing medians"
require_tool ffmpeg "the ffmpeg/libx264 peer"
if [ ! -x /usr/bin/time ]; then
    echo "error: /usr/bin/time is missing; install it with: apt-get install -y time" >&2
    exit 2
fi
if ! ffmpeg -hide_banner -encoders 2>/dev/null | grep libx264 >/dev/null; then
    echo "error: this ffmpeg has no libx264 encoder" >&2
    exit 2
fi
CLK_TCK=$(getconf CLK_TCK)

# The publisher commands, one word per line (P = port, SECS = seconds to publish).
livefeed_cmd() { # PORT SECS
    if [ "$SOURCE" = pattern ]; then
        printf '%s\n' "$BIN" publish --url "rtsp://127.0.0.1:$1/lf" --resolution 1280x720 \
            --framerate 30 --bitrate 4000 --duration "$2" --json
    else # frames from the feeder on stdin; stops at its end
        printf '%s\n' "$BIN" publish --url "rtsp://127.0.0.1:$1/lf" --input - --bitrate 4000 --json
    fi
}
ffmpeg_cmd() { # PORT SECS
    if [ "$SOURCE" = pattern ]; then
        printf '%s\n' ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
            -t "$2" -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p \
            -f rtsp -rtsp_transport tcp "rtsp://127.0.0.1:$1/ff"
    else
        printf '%s\n' ffmpeg -hide_banner -loglevel error -f yuv4mpegpipe -i - \
            -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p \
            -f rtsp -rtsp_transport tcp "rtsp://127.0.0.1:$1/ff"
    fi
}
feeder_cmd() { # SECS: real-time testsrc2 frames as y4m on stdout (SOURCE=testsrc2 only)
    printf '%s\n' ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
        -t "$1" -pix_fmt yuv420p -f yuv4mpegpipe -
}
show() { tr '\n' ' ' | sed "s| $||; s|^$BIN|target/release/livefeed|"; }

# run_publisher NAME SECS LOGPREFIX [TIMEFILE]: runs one publisher to its end (bounded by
# timeout), timed by /usr/bin/time when TIMEFILE is given; returns the publisher's exit status.
run_publisher() {
    local name=$1 secs=$2 log=$3 tf=${4:-} cmd feeder status=0
    if [ "$name" = livefeed ]; then
        mapfile -t cmd < <(livefeed_cmd "$P" "$secs")
    else
        mapfile -t cmd < <(ffmpeg_cmd "$P" "$secs")
    fi
    if [ -n "$tf" ]; then cmd=(/usr/bin/time -o "$tf" -f '%U %S %e' "${cmd[@]}"); fi
    if [ "$SOURCE" = pattern ]; then
        timeout $((secs + 60)) "${cmd[@]}" >"$log.out" 2>"$log.err" </dev/null || status=$?
    else
        mapfile -t feeder < <(feeder_cmd "$secs")
        timeout $((secs + 60)) "${feeder[@]}" 2>"$log.feeder.err" </dev/null |
            timeout $((secs + 60)) "${cmd[@]}" >"$log.out" 2>"$log.err" || true
        status=${PIPESTATUS[1]}
    fi
    return "$status"
}

echo "# livefeed publisher CPU benchmark (bench/publisher_cpu.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- binary: $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- checkout at run time: $(checkout_desc) (the binary is as old as its build time above)"
echo "- machine: $(machine_desc)"
echo "- ffmpeg: $(ffmpeg -hide_banner -version | head -1)"
echo "- logs: $OUT_DIR"
echo

start_server "$OUT_DIR/server"
P=$SERVER_PORT
echo "Server: \`target/release/livefeed serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0\` → port $P (pid $SERVER_PID)"
echo
echo "Source: $SOURCE. Commands (P = that port):"
echo
if [ "$SOURCE" = testsrc2 ]; then
    echo "- feeder (not timed), piped into each publisher: \`$(feeder_cmd "$DURATION" | show)\`"
fi
echo "- livefeed: \`$(livefeed_cmd P "$DURATION" | show)\`"
echo "- ffmpeg:   \`$(ffmpeg_cmd P "$DURATION" | show)\`"
echo
echo "each run as \`/usr/bin/time -f '%U %S %e' COMMAND\`; CPU s = user + sys (all threads, children included)."
echo

RESULTS=$OUT_DIR/results.tsv
: >"$RESULTS"

# measure RUN ORDER NAME: runs one publisher to completion and appends a row to $RESULTS.
measure() {
    local run=$1 order=$2 name=$3 tf load s0 s1 status=0 fig
    tf=$OUT_DIR/time-$name-$run.txt
    load=$(cut -d' ' -f1 /proc/loadavg)
    s0=$(cpu_ticks "$SERVER_PID")
    run_publisher "$name" "$DURATION" "$OUT_DIR/$name-$run" "$tf" || status=$?
    s1=$(cpu_ticks "$SERVER_PID")
    # /usr/bin/time writes "Command exited with non-zero status N" before the figures on failure.
    fig=$(tail -1 "$tf" 2>/dev/null || true)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$order" "$name" "$fig" \
        "$(python3 -c "import sys; print(f'{(int(sys.argv[2])-int(sys.argv[1]))/int(sys.argv[3]):.2f}')" "$s0" "$s1" "$CLK_TCK")" \
        "$load" "$status" >>"$RESULTS"
    sleep 2 # let the server drop the finished session before the next publisher
}

for run in $(seq "$REPEAT"); do
    if [ $((run % 2)) -eq 1 ]; then
        measure "$run" 1 livefeed
        measure "$run" 2 ffmpeg
    else
        measure "$run" 1 ffmpeg
        measure "$run" 2 livefeed
    fi
done

python3 - "$RESULTS" "$OUT_DIR" "$SOURCE" <<'PY'
import statistics, sys, json, os
rows = []
for line in open(sys.argv[1]):
    run, order, name, fig, srv, load, status = line.rstrip("\n").split("\t")
    parts = fig.split()
    user, sys_, wall = (float(x) for x in parts) if len(parts) == 3 else (None, None, None)
    rows.append(dict(run=int(run), order=int(order), name=name, user=user, sys=sys_, wall=wall,
                     srv=float(srv), load=load, status=int(status)))

def frames(name, run):
    if name != "livefeed":
        return "–"
    path = os.path.join(sys.argv[2], f"livefeed-{run}.out")
    try:
        for line in open(path):
            if '"summary"' in line:
                return str(json.loads(line).get("frames_published", "?"))
    except OSError:
        pass
    return "?"

print("| run | order | publisher | user s | sys s | CPU s | wall s | CPU % of one core | server CPU s meanwhile | load1 before | frames published | exit |")
print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if r["user"] is None:
        print(f"| {r['run']} | {r['order']} | {r['name']} | – | – | – | – | – | {r['srv']:.2f} | {r['load']} | – | {r['status']} |")
        continue
    cpu = r["user"] + r["sys"]
    print(f"| {r['run']} | {r['order']} | {r['name']} | {r['user']:.2f} | {r['sys']:.2f} | {cpu:.2f} "
          f"| {r['wall']:.2f} | {100 * cpu / r['wall']:.0f} % | {r['srv']:.2f} | {r['load']} "
          f"| {frames(r['name'], r['run'])} | {r['status']} |")
print()
ok = {n: [r["user"] + r["sys"] for r in rows if r["name"] == n and r["user"] is not None and r["status"] == 0]
      for n in ("livefeed", "ffmpeg")}
srv = {n: [r["srv"] for r in rows if r["name"] == n and r["status"] == 0] for n in ("livefeed", "ffmpeg")}
failed = [r for r in rows if r["status"] != 0]
if failed:
    print(f"**{len(failed)} run(s) failed** (non-zero exit); they are left out of the medians.")
    print()
if ok["livefeed"] and ok["ffmpeg"]:
    lf, ff = statistics.median(ok["livefeed"]), statistics.median(ok["ffmpeg"])
    print(f"Median CPU seconds: livefeed {lf:.2f} s (n={len(ok['livefeed'])}), "
          f"ffmpeg {ff:.2f} s (n={len(ok['ffmpeg'])})")
    print(f"Median server CPU seconds while each published: livefeed {statistics.median(srv['livefeed']):.2f} s, "
          f"ffmpeg {statistics.median(srv['ffmpeg']):.2f} s")
    ratio = lf / ff
    print(f"Ratio livefeed / ffmpeg = {ratio:.2f}  →  target ≤ 1.00: {'MET' if ratio <= 1 else 'MISSED'}")
else:
    print("No ratio: a publisher has no successful run.")
print()
if sys.argv[3] == "pattern":
    print("Note: each side's CPU includes making its own pictures: ffmpeg's testsrc2 generation (lavfi)")
    print("is in ffmpeg's figure just as the test-pattern drawing and timecode overlay are in livefeed's.")
    print("The two sources are different pictures, and ffmpeg's command sets no bitrate (libx264 CRF 23),")
    print("while livefeed's asks OpenH264 for 4000 kbit/s; see the bitrate probe below.")
else:
    print("Note: both publishers encoded the same testsrc2 pictures from a y4m pipe; generating them")
    print("(the feeder ffmpeg) is in neither figure. livefeed's figure still includes its timecode")
    print("overlay. ffmpeg's command sets no bitrate (libx264 CRF 23); livefeed asks for 4000 kbit/s.")
PY
echo

if [ "$PROBE_BITRATE" = 1 ]; then
    require_tool ffprobe "the bitrate probe (or set PROBE_BITRATE=0)"
    echo "## bitrate each publisher actually produced (separate run, one ffmpeg -c copy reader)"
    echo
    echo "| publisher | measured kbit/s | frames read |"
    echo "|---|---:|---:|"
    for name in livefeed ffmpeg; do
        if [ "$name" = livefeed ]; then path=lf; else path=ff; fi
        run_publisher "$name" $((PROBE_SECS + 4)) "$OUT_DIR/probe-$name" &
        pub=$!
        BG_PIDS+=("$pub")
        sleep 1.5
        rate=$(tap_bitrate "rtsp://127.0.0.1:$P/$path" "$PROBE_SECS" 30 "$OUT_DIR/probe-$name.h264")
        frames=$(timeout 60 ffprobe -v error -count_packets -select_streams v:0 \
            -show_entries stream=nb_read_packets -of csv=p=0 "$OUT_DIR/probe-$name.h264" 2>/dev/null | head -1 || true)
        for _ in $(seq 100); do kill -0 "$pub" 2>/dev/null || break; sleep 0.1; done
        kill_tree "$pub"
        wait "$pub" 2>/dev/null || true
        echo "| $name | $rate | ${frames:-n/a} |"
        sleep 2
    done
    echo
fi

stop_server
