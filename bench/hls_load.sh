#!/usr/bin/env bash
# bench/hls_load.sh: LL-HLS under load, livefeed against nginx serving the same parts (issue 3).
#
# One `livefeed serve --test-src --hls-dir DIR` (640x480@30 test pattern on path `live`; with
# --hls-dir it also writes every part, segment and the playlist to DIR, atomically) and one
# nginx serving DIR as static files, both on free loopback ports. Then, one phase after the
# other (never at the same time), CLIENTS clients of bench/hls-load (one keep-alive HTTP/1.1
# connection each, one request at a time) follow the live stream for WARMUP + DURATION seconds;
# only the last DURATION seconds are counted:
#
#   livefeed-blocking  livefeed, LL-HLS as designed: blocking playlist reload
#                      ?_HLS_msn=M&_HLS_part=I for the preload-hinted part, then GET of every
#                      part listed and not fetched yet (normally exactly that one).
#   nginx-poll         nginx, which cannot block: every POLL_MS ms, GET the playlist (no query),
#                      then GET every part listed and not fetched yet.
#   livefeed-poll      livefeed with exactly the nginx clients' behaviour (same server code as
#                      the first phase, same requests as the second): isolates server cost.
#
# Part-delivery latency = when the part's last byte reached the client − the part's
# `available_unix_ns` in livefeed's /live/timestamps.json (when it completed on the server; the
# files nginx serves are written right after that). The generator reads timestamps.json every
# 2 s. Before the phases, the server's idle CPU (publishing and muxing the test stream, writing
# the files, no clients) is measured for IDLE_SECS; "net" CPU subtracts it.
#
# The generator is built here (cargo build --release --manifest-path bench/hls-load/Cargo.toml,
# its own target dir, ~40 s the first time); the livefeed binary is not (cargo build --release).
# Needs nginx (Debian: apt-get install -y nginx), curl, python3.
# Environment: CLIENTS (500), WARMUP (5), DURATION (30), POLL_MS (50), GEN_THREADS (1: the
#              generator's tokio worker threads), NGINX_WORKERS (auto), IDLE_SECS (10),
#              PART_DURATION (unset: the server's default), PHASES ("livefeed-blocking
#              nginx-poll livefeed-poll"), OUT_DIR (a new /tmp/livefeed-bench.* dir).
# Takes about IDLE_SECS + 3 × (WARMUP + DURATION + ~5) s: ~2.2 minutes with the defaults.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS=${CLIENTS:-500}
WARMUP=${WARMUP:-5}
DURATION=${DURATION:-30}
POLL_MS=${POLL_MS:-50}
GEN_THREADS=${GEN_THREADS:-1}
NGINX_WORKERS=${NGINX_WORKERS:-auto}
IDLE_SECS=${IDLE_SECS:-10}
PART_DURATION=${PART_DURATION:-}
PHASES=${PHASES:-"livefeed-blocking nginx-poll livefeed-poll"}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"
umask 022
# nginx's workers run as "nobody" when it is started as root: let them read the files.
chmod 755 "$OUT_DIR"

require_bin
require_tool python3 "formatting the tables"
require_tool curl "waiting for the servers"
require_tool nginx "the peer (Debian: apt-get install -y nginx)"
# Every client holds a socket, and so does each server for it.
hls_load_bin "$OUT_DIR" "$CLIENTS"
CLK_TCK=$(getconf CLK_TCK)

echo "# livefeed LL-HLS load against nginx (bench/hls_load.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- binary: $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- checkout at run time: $(checkout_desc) (the binary is as old as its build time above)"
echo "- machine: $(machine_desc); the servers, the test-stream encoder and the load generator all share them"
echo "- peer: $(nginx -v 2>&1 | sed 's/^nginx version: //'), worker_processes $NGINX_WORKERS, access_log off, sendfile on"
echo "- load generator: bench/hls-load, $CLIENTS clients, $GEN_THREADS tokio worker thread(s); open files limit $(ulimit -n)"
echo "- logs and raw JSON: $OUT_DIR"
echo

HLS_DIR=$OUT_DIR/hls
# Every client connects from 127.0.0.1: lift the per-address connection cap (256 by default)
# above the client count, as for a cache tier or a NAT in front of the server.
serve_args=(--test-src --hls-dir "$HLS_DIR" --data-dir "$OUT_DIR/data"
            --max-connections-per-address $((CLIENTS + 64)))
if [ -n "$PART_DURATION" ]; then serve_args+=(--part-duration "$PART_DURATION"); fi
start_server "$OUT_DIR/server" "${serve_args[@]}"
server_http_port "$OUT_DIR/server"
P=$SERVER_HTTP_PORT
# The first playlist request starts the path's LL-HLS stream (and the files).
if ! wait_http_ok "http://127.0.0.1:$P/live/index.m3u8" 30; then
    echo "error: livefeed's playlist never answered; see $OUT_DIR/server.err" >&2
    exit 1
fi
for _ in $(seq 100); do [ -s "$HLS_DIR/live/index.m3u8" ] && break; sleep 0.1; done
if [ ! -s "$HLS_DIR/live/index.m3u8" ]; then
    echo "error: livefeed wrote no $HLS_DIR/live/index.m3u8" >&2
    exit 1
fi
echo "livefeed: \`target/release/livefeed serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0 ${serve_args[*]/#$OUT_DIR/\$OUT_DIR}\` (HTTP port $P, pid $SERVER_PID)"
echo

NG=$OUT_DIR/nginx
mkdir -p "$NG/tmp"
NP=$(free_port)
cat >"$NG/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile $need;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections $need; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache off;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    types { application/vnd.apple.mpegurl m3u8; video/mp4 mp4 m4s; }
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$NP;
        root $HLS_DIR;
        location ~ \\.m3u8\$ { add_header Cache-Control no-cache; }
    }
}
EOF
nginx -p "$NG/" -e "$NG/error.log" -c "$NG/nginx.conf" -g 'daemon off;' >"$NG/stdout" 2>"$NG/stderr" &
NGINX_PID=$!
BG_PIDS+=("$NGINX_PID")
if ! wait_http_ok "http://127.0.0.1:$NP/live/index.m3u8" 15; then
    echo "error: nginx does not serve $HLS_DIR; see $NG/stderr and $NG/error.log" >&2
    exit 1
fi
nginx_workers=$(ps -o pid= --ppid "$NGINX_PID" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
echo "nginx: \`nginx -p \$OUT_DIR/nginx/ -c nginx.conf -g 'daemon off;'\` on 127.0.0.1:$NP (master pid $NGINX_PID, workers $nginx_workers), root \$OUT_DIR/hls; config in $NG/nginx.conf"
echo

cpu_args=(--cpu "livefeed=$SERVER_PID" --cpu "nginx_master=$NGINX_PID")
for w in $nginx_workers; do cpu_args+=(--cpu "nginx_worker_$w=$w"); done

# Idle baseline: what the servers cost with no clients.
sleep 2
idle_lf0=$(cpu_ticks "$SERVER_PID")
idle_ng0=0
for pid in "$NGINX_PID" $nginx_workers; do idle_ng0=$((idle_ng0 + $(cpu_ticks "$pid"))); done
sleep "$IDLE_SECS"
idle_lf1=$(cpu_ticks "$SERVER_PID")
idle_ng1=0
for pid in "$NGINX_PID" $nginx_workers; do idle_ng1=$((idle_ng1 + $(cpu_ticks "$pid"))); done
echo "{\"idle_s\": $IDLE_SECS, \"livefeed_ticks\": $((idle_lf1 - idle_lf0)), \"nginx_ticks\": $((idle_ng1 - idle_ng0)), \"clk_tck\": $CLK_TCK}" >"$OUT_DIR/idle.json"
echo "Idle (no clients) for ${IDLE_SECS} s: livefeed $((idle_lf1 - idle_lf0)) ticks, nginx $((idle_ng1 - idle_ng0)) ticks (${CLK_TCK} ticks/s)"
echo

for phase in $PHASES; do
    case $phase in
        livefeed-blocking) mode=blocking; url="http://127.0.0.1:$P/live/index.m3u8" ;;
        nginx-poll) mode=poll; url="http://127.0.0.1:$NP/live/index.m3u8" ;;
        livefeed-poll) mode=poll; url="http://127.0.0.1:$P/live/index.m3u8" ;;
        *) echo "error: unknown phase $phase" >&2; exit 2 ;;
    esac
    sleep 2 # let the previous phase's connections close
    echo "Phase $phase: load average before $(cut -d' ' -f1-3 /proc/loadavg); \`bench/hls-load/target/release/hls-load --mode $mode --url $url --timestamps http://127.0.0.1:$P/live/timestamps.json --clients $CLIENTS --warmup $WARMUP --duration $DURATION --poll-ms $POLL_MS --threads $GEN_THREADS\`"
    status=0
    timeout $((WARMUP + DURATION + 90)) "$LOADGEN" --mode "$mode" --url "$url" \
        --timestamps "http://127.0.0.1:$P/live/timestamps.json" --clients "$CLIENTS" \
        --warmup "$WARMUP" --duration "$DURATION" --poll-ms "$POLL_MS" --threads "$GEN_THREADS" \
        --clk-tck "$CLK_TCK" --label "$phase" --arrivals "$OUT_DIR/$phase-arrivals.csv" \
        "${cpu_args[@]}" >"$OUT_DIR/$phase.json" 2>"$OUT_DIR/$phase.err" || status=$?
    if [ "$status" -ne 0 ]; then
        echo
        echo "**load generator exited with status $status** (log: $OUT_DIR/$phase.err)"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo
        echo "**livefeed died during $phase** (log: $OUT_DIR/server.err)"
        break
    fi
    echo
done

python3 - "$OUT_DIR" "$PHASES" "$POLL_MS" <<'EOF'
import json, os, sys
out, phases, poll_ms = sys.argv[1], sys.argv[2].split(), sys.argv[3]
idle = json.load(open(os.path.join(out, "idle.json")))
tck = idle["clk_tck"]
idle_rate = {"livefeed": idle["livefeed_ticks"] / tck / idle["idle_s"],
             "nginx": idle["nginx_ticks"] / tck / idle["idle_s"]}
runs = {}
for p in phases:
    try:
        runs[p] = json.load(open(os.path.join(out, f"{p}.json")))
    except (OSError, ValueError):
        pass
if not runs:
    print("**no phase produced a result**")
    sys.exit(0)

def server_of(p):
    return "nginx" if p.startswith("nginx") else "livefeed"

def server_cpu(r, who):
    cpu = r["cpu_s"]
    if who == "livefeed":
        return cpu.get("livefeed")
    vals = [v for k, v in cpu.items() if k.startswith("nginx") and v is not None]
    return sum(vals) if vals else None

def derived(p):
    r = runs[p]
    who = server_of(p)
    w = r["window_s"]
    raw = server_cpu(r, who)
    net = None if raw is None else raw - idle_rate[who] * w
    per_req = None if net is None or not r["requests"] else net / r["requests"] * 1e6
    return {"who": who, "w": w, "raw": raw, "net": net, "per_req": per_req}

D = {p: derived(p) for p in runs}
names = {
    "livefeed-blocking": "livefeed, blocking reload",
    "nginx-poll": f"nginx, polling every {poll_ms} ms",
    "livefeed-poll": f"livefeed, polling every {poll_ms} ms",
}
cols = [p for p in phases if p in runs]
def f(v, fmt="{:.1f}"):
    return "–" if v is None else fmt.format(v)
def lat(r, key, q):
    s = r[key]
    return f(s.get(q), "{:.1f}")
rows = []
def row(label, fn):
    rows.append(f"| {label} | " + " | ".join(fn(p) for p in cols) + " |")
row("clients", lambda p: str(runs[p]["clients"]))
row("counted window (s)", lambda p: f(runs[p]["window_s"], "{:.0f}"))
row("**requests/s** (playlist + part)", lambda p: f"**{runs[p]['requests_per_s']:.0f}**")
row("playlist requests/s", lambda p: f(runs[p]["playlist_requests"] / runs[p]["window_s"], "{:.0f}"))
row("part requests/s", lambda p: f(runs[p]["part_requests"] / runs[p]["window_s"], "{:.0f}"))
row("MB/s to clients", lambda p: f(runs[p]["mbytes_per_s"], "{:.2f}"))
row("errors (by kind)", lambda p: str(runs[p]["errors"]) + (" " + json.dumps(runs[p]["errors_by_kind"]) if runs[p]["errors"] else ""))
row("parts completed on the server in the window", lambda p: str(runs[p]["parts_published_in_window"]))
row("parts fetched per client: min / median / max", lambda p: "{} / {} / {}".format(
    *(f(runs[p]["parts_per_client"].get(k), "{:.0f}") for k in ("min", "p50", "max"))))
row("parts without a timestamp (not in timestamps.json)", lambda p: str(runs[p]["parts_unmatched"]))
row("**part delivery latency p50** (ms): arrival − available", lambda p: "**" + lat(runs[p], "delivery_ms", "p50") + "**")
row("part delivery latency p95 / p99 / max (ms)", lambda p: " / ".join(lat(runs[p], "delivery_ms", q) for q in ("p95", "p99", "max")))
row("part delivery latency min (ms)", lambda p: lat(runs[p], "delivery_ms", "min"))
row("capture of the part's first frame → arrival, p50 / p95 (ms)", lambda p: " / ".join(lat(runs[p], "capture_to_client_ms", q) for q in ("p50", "p95")))
row("part GET (request → last byte) p50 / p99 (ms)", lambda p: " / ".join(lat(runs[p], "part_get_ms", q) for q in ("p50", "p99")))
row("**server CPU s** in the window (% of one core)", lambda p: f"**{f(D[p]['raw'], '{:.2f}')}** ({f(None if D[p]['raw'] is None else 100 * D[p]['raw'] / D[p]['w'], '{:.0f}')} %)")
row("server CPU s net of its idle cost", lambda p: f(D[p]["net"], "{:.2f}"))
row("**server CPU µs per request** (net)", lambda p: "**" + f(D[p]["per_req"], "{:.1f}") + "**")
row("load generator CPU s (% of one core)", lambda p: f"{f(runs[p]['cpu_s'].get('load_generator'), '{:.2f}')} ({f(None if runs[p]['cpu_s'].get('load_generator') is None else 100 * runs[p]['cpu_s']['load_generator'] / runs[p]['window_s'], '{:.0f}')} %)")
row("livefeed CPU s meanwhile (all phases)", lambda p: f(runs[p]["cpu_s"].get("livefeed"), "{:.2f}"))
def others(p):
    busy = runs[p].get("machine_busy_cpu_s")
    if busy is None:
        return "–"
    ours = sum(v for v in runs[p]["cpu_s"].values() if v is not None)
    return f"{busy:.1f} / {busy - ours:.1f}"
row("whole machine busy CPU s / of which other processes (not livefeed, nginx, generator)", others)
print("## Results")
print()
print(f"Idle cost (no clients, {idle['idle_s']} s): livefeed {100 * idle_rate['livefeed']:.1f} % of one core "
      f"(test-pattern encoder, muxer, file writes), nginx {100 * idle_rate['nginx']:.1f} %.")
print()
print("| | " + " | ".join(names.get(p, p) for p in cols) + " |")
print("|---|" + "---:|" * len(cols))
print("\n".join(rows))
print()
def ratio(a, b, key):
    if a not in D or b not in D:
        return None
    if key == "rps":
        x, y = runs[a]["requests_per_s"], runs[b]["requests_per_s"]
    elif key == "cpu":
        x, y = D[a]["per_req"], D[b]["per_req"]
    elif key == "cpu_raw":
        x, y = D[a]["raw"], D[b]["raw"]
    else:
        x, y = runs[a]["delivery_ms"].get("p50"), runs[b]["delivery_ms"].get("p50")
    if x is None or y in (None, 0):
        return None
    return x / y
pairs = [(a, b) for a, b in [("livefeed-blocking", "nginx-poll"), ("livefeed-poll", "nginx-poll")]
         if a in D and b in D]
if pairs:
    print("| ratio livefeed / nginx | requests/s | server CPU per request (net) | server CPU s (raw) | part delivery p50 |")
    print("|---|---:|---:|---:|---:|")
for a, b in pairs:
    if a in D and b in D:
        print(f"| {names[a]} / {names[b]} | {f(ratio(a, b, 'rps'), '{:.2f}')} | {f(ratio(a, b, 'cpu'), '{:.2f}')} | "
              f"{f(ratio(a, b, 'cpu_raw'), '{:.2f}')} | {f(ratio(a, b, 'lat'), '{:.2f}')} |")
print()
EOF
