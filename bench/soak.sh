#!/usr/bin/env bash
# bench/soak.sh: a soak run (issue 6). For SOAK_SECS (default 600), against one release server:
#   - a publisher (`livefeed publish`, 640x480@30 test pattern) on path `soak`, killed (by PID)
#     and restarted every RESTART_SECS (default 60) — within the server's publisher grace;
#   - READERS (default 50) reader slots, each looping: connect, read, leave. Reader kinds take
#     turns: RTSP over TCP (DESCRIBE/SETUP/PLAY, read interleaved media for 2–8 s, TEARDOWN),
#     RTSP that just closes the socket mid-stream (no TEARDOWN), and LL-HLS (playlist, init,
#     then blocking playlist reloads and the newest part for 2–8 s). Every session is counted;
#     an error is any session that could not start (non-200, no media within 5 s), except
#     during the few seconds after a publisher restart when a new RTSP reader may find no
#     stream (counted separately as "no stream (restart gap)").
#   - every 10 s: the server's RSS (VmRSS) and open file descriptors (/proc/PID/fd).
# Prints the table of samples, sessions served per kind, errors, and RSS/FDs at start (after
# 30 s of warm-up) and end.
# Environment: SOAK_SECS (600), READERS (50), RESTART_SECS (60), OUT_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SOAK_SECS=${SOAK_SECS:-600}
READERS=${READERS:-50}
RESTART_SECS=${RESTART_SECS:-60}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"
require_bin
require_tool python3 "the reader load"

echo "# livefeed soak run (bench/soak.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- checkout: $(checkout_desc); binary $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- machine: $(machine_desc); server, publisher and readers share them"
echo "- ${SOAK_SECS} s, ${READERS} reader slots, publisher restarted every ${RESTART_SECS} s; raw output: $OUT_DIR"
echo

LIVEFEED_DATA_DIR=$OUT_DIR/data start_server "$OUT_DIR/server"
server_http_port "$OUT_DIR/server"
RTSP=rtsp://127.0.0.1:$SERVER_PORT/soak
HTTP=http://127.0.0.1:$SERVER_HTTP_PORT

PUB_PID=
start_publisher() {
    "$BIN" publish --url "$RTSP" >>"$OUT_DIR/publisher.out" 2>>"$OUT_DIR/publisher.err" &
    PUB_PID=$!
    BG_PIDS+=("$PUB_PID")
}
start_publisher
wait_http_ok "$HTTP/api/v1/paths/soak" 20

python3 - "$SERVER_PORT" "$SERVER_HTTP_PORT" "$READERS" "$SOAK_SECS" "$OUT_DIR/readers.json" >"$OUT_DIR/readers.out" 2>"$OUT_DIR/readers.err" <<'PY' &
import http.client, json, random, socket, sys, threading, time
rtsp_port, http_port, readers, secs, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
deadline = time.time() + secs
lock = threading.Lock()
stats = {"rtsp": 0, "rtsp_abrupt": 0, "hls": 0, "errors": 0, "no_stream": 0, "bytes": 0, "error_samples": []}
url = f"rtsp://127.0.0.1:{rtsp_port}/soak"

def count(key, n=1):
    with lock:
        stats[key] += n

def error(msg):
    with lock:
        stats["errors"] += 1
        if len(stats["error_samples"]) < 10:
            stats["error_samples"].append(msg)

def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise IOError("closed")
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(rest) < length:
        rest += sock.recv(65536)
    return head.decode("latin1"), rest[length:]

def rtsp_session(abrupt):
    s = socket.create_connection(("127.0.0.1", rtsp_port), timeout=5)
    try:
        buf = b""
        s.sendall(f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n".encode())
        head, buf = read_response(s, buf)
        if " 404 " in head.split("\r\n")[0]:
            count("no_stream")
            return
        if " 200 " not in head.split("\r\n")[0]:
            return error("DESCRIBE: " + head.split("\r\n")[0])
        s.sendall(f"SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n".encode())
        head, buf = read_response(s, buf)
        if " 200 " not in head.split("\r\n")[0]:
            return error("SETUP: " + head.split("\r\n")[0])
        session = [l.split(":", 1)[1].split(";")[0].strip() for l in head.split("\r\n") if l.lower().startswith("session:")][0]
        s.sendall(f"PLAY {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n".encode())
        head, buf = read_response(s, buf)
        if " 200 " not in head.split("\r\n")[0]:
            return error("PLAY: " + head.split("\r\n")[0])
        got, end = len(buf), time.time() + random.uniform(2, 8)
        while time.time() < end:
            data = s.recv(65536)
            if not data:
                return error("RTSP reader: server closed the connection")
            got += len(data)
        if got == 0:
            return error("RTSP reader: no media")
        count("bytes", got)
        if not abrupt:
            s.sendall(f"TEARDOWN {url} RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n".encode())
        count("rtsp_abrupt" if abrupt else "rtsp")
    finally:
        s.close()

def hls_session():
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    try:
        viewer = f"soak{random.randrange(1 << 30)}"
        c.request("GET", f"/soak/index.m3u8?viewer={viewer}")
        r = c.getresponse(); body = r.read().decode()
        if r.status == 404:
            count("no_stream")
            return
        if r.status != 200:
            return error(f"playlist: {r.status}")
        c.request("GET", "/soak/init.mp4"); r = c.getresponse(); r.read()
        if r.status != 200:
            return error(f"init: {r.status}")
        end = time.time() + random.uniform(2, 8)
        while time.time() < end:
            # Like a player: fetch the hinted part (streamed as it is written), then block
            # for the playlist that lists it.
            hint = [l for l in body.splitlines() if l.startswith("#EXT-X-PRELOAD-HINT:")]
            if not hint:
                return error("playlist without a preload hint")
            uri = hint[-1].split('URI="')[1].split('"')[0]
            name = uri.split("-", 1)[-1]  # "<stream id>-part<msn>.<i>.m4s"
            msn, part = (int(x) for x in name[len("part"):-len(".m4s")].split("."))
            c.request("GET", f"/soak/{uri}"); r = c.getresponse(); data = r.read()
            if r.status == 200:
                count("bytes", len(data))
            c.request("GET", f"/soak/index.m3u8?viewer={viewer}&_HLS_msn={msn}&_HLS_part={part}")
            r = c.getresponse(); body = r.read().decode()
            if r.status == 503:
                continue  # stalled while the publisher restarts
            if r.status != 200:
                return error(f"blocking reload: {r.status}")
        count("hls")
    finally:
        c.close()

def slot(i):
    kinds = [lambda: rtsp_session(False), lambda: rtsp_session(True), hls_session]
    k = i
    while time.time() < deadline:
        try:
            kinds[k % 3]()
        except Exception as e:
            error(f"{type(e).__name__}: {e}")
        k += 1

threads = [threading.Thread(target=slot, args=(i,)) for i in range(readers)]
for t in threads: t.start()
for t in threads: t.join()
json.dump(stats, open(out, "w"))
PY
LOAD_PID=$!
BG_PIDS+=("$LOAD_PID")

fds() { ls "/proc/$1/fd" | wc -l; }
kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
echo "| t (s) | RSS (MiB) | open fds | RTSP readers | HLS viewers | publisher restarts |"
echo "|---:|---:|---:|---:|---:|---:|"
start=$(date +%s)
restarts=0
next_restart=$((start + RESTART_SECS))
next_sample=$start
first_rss=; first_fds=
while kill -0 "$LOAD_PID" 2>/dev/null; do
    now=$(date +%s)
    if [ "$now" -ge "$next_restart" ]; then
        kill "$PUB_PID" 2>/dev/null || true
        wait "$PUB_PID" 2>/dev/null || true
        sleep 2
        start_publisher
        restarts=$((restarts + 1))
        next_restart=$((next_restart + RESTART_SECS))
    fi
    t=$((now - start))
    if [ "$now" -ge "$next_sample" ]; then
        next_sample=$((next_sample + 10))
        rss=$(kib "$SERVER_PID" VmRSS); fd=$(fds "$SERVER_PID")
        counts=$(curl -fsS --max-time 5 "$HTTP/api/v1/paths/soak" 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin)["reader_counts"]; print(d["rtsp"], d["hls"])' 2>/dev/null || echo "- -")
        echo "| $t | $(python3 -c "print(f'{$rss/1024:.1f}')") | $fd | ${counts% *} | ${counts#* } | $restarts |"
        if [ "$t" -ge 30 ] && [ -z "$first_rss" ]; then first_rss=$rss; first_fds=$fd; fi
    fi
    sleep 0.5
done
wait "$LOAD_PID" || true
end_rss=$(kib "$SERVER_PID" VmRSS); end_fds=$(fds "$SERVER_PID"); hwm=$(kib "$SERVER_PID" VmHWM)
sleep 12 # every reader gone; the publisher grace passes
idle_fds=$(fds "$SERVER_PID")
stop_server
echo
python3 - "$OUT_DIR/readers.json" "${first_rss:-$end_rss}" "$end_rss" "$hwm" "${first_fds:-$end_fds}" "$end_fds" "$idle_fds" "$restarts" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
r0, r1, hwm, f0, f1, fi, restarts = map(int, sys.argv[2:])
total = d["rtsp"] + d["rtsp_abrupt"] + d["hls"]
print("| sessions served | RTSP (TEARDOWN) | RTSP (socket closed) | LL-HLS | errors | no stream (restart gap) | media read | publisher restarts |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {total:,} | {d['rtsp']:,} | {d['rtsp_abrupt']:,} | {d['hls']:,} | {d['errors']} | {d['no_stream']} | {d['bytes'] / 1e9:.2f} GB | {restarts} |")
print()
print("| | at 30 s | at the end | peak |")
print("|---|---:|---:|---:|")
print(f"| RSS (MiB) | {r0 / 1024:.1f} | {r1 / 1024:.1f} | {hwm / 1024:.1f} |")
print(f"| open fds | {f0} | {f1} (after the readers left: {fi}) | – |")
if d["error_samples"]:
    print()
    print("error samples:", d["error_samples"])
PY
