#!/usr/bin/env bash
# bench/hls_cache.sh: LL-HLS through a cache tier (issue 15). What the origin pays, and what the
# viewers get, with CLIENTS blocking LL-HLS clients directly on the origin, through nginx
# (deploy/nginx/livefeed-edge.conf), through Varnish (deploy/varnish/livefeed.vcl), and through
# two tiers (phase two-tier: a second nginx, same file, in front of that Varnish), in that
# order, one phase at a time.
#
# One `livefeed serve --test-src` (640x480@30 test pattern on path `live`, 100 ms parts) is the
# origin; nginx and Varnish run the shipped files with only their addresses changed, all on free
# loopback ports. Each phase runs bench/hls-load in blocking mode (a blocking playlist reload
# for the preload-hinted part, then a GET of every new part; one keep-alive connection per
# client) for WARMUP + DURATION seconds, counting the last DURATION.
#
# Per phase: the origin's LL-HLS requests per part produced (its livefeed_hls_requests_total,
# read before and after the generator, over parts that completed meanwhile per its
# timestamps.json), by kind; part delivery latency at the clients (the part's last byte −
# when it completed on the origin); CPU of the origin and of the cache processes in the window.
#
# Builds bench/hls-load (its own target dir); expects target/release/livefeed. Needs nginx,
# varnishd (Debian: nginx, varnish), curl, python3.
# Environment: CLIENTS (500), WARMUP (5), DURATION (30), GEN_THREADS (1),
#              PHASES ("direct nginx varnish two-tier"), OUT_DIR (a new /tmp/livefeed-bench.* dir).
# Takes about 4 × (WARMUP + DURATION + ~10) s: ~3.5 minutes with the defaults.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS=${CLIENTS:-500}
WARMUP=${WARMUP:-5}
DURATION=${DURATION:-30}
GEN_THREADS=${GEN_THREADS:-1}
PHASES=${PHASES:-"direct nginx varnish two-tier"}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"
chmod 755 "$OUT_DIR"
DEPLOY=$BENCH_DIR/../deploy

require_bin
require_tool python3 "formatting the tables"
require_tool curl "waiting for the servers"
require_tool nginx "the nginx edge (Debian: apt-get install -y nginx)"
require_tool varnishd "the Varnish edge (Debian: apt-get install -y varnish)"
hls_load_bin "$OUT_DIR" "$CLIENTS"
CLK_TCK=$(getconf CLK_TCK)

echo "# livefeed LL-HLS through a cache tier (bench/hls_cache.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- binary: $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- checkout at run time: $(checkout_desc)"
echo "- machine: $(machine_desc); origin, caches, test-stream encoder and load generator share them"
echo "- caches: $(nginx -v 2>&1 | sed 's/^nginx version: //') with deploy/nginx/livefeed-edge.conf, $(varnishd -V 2>&1 | head -1 | sed 's/^varnishd (\(.*\))$/\1/') with deploy/varnish/livefeed.vcl"
echo "- load generator: bench/hls-load --mode blocking, $CLIENTS clients, $GEN_THREADS tokio worker thread(s)"
echo "- logs and raw JSON: $OUT_DIR"
echo

serve_args=(--test-src --data-dir "$OUT_DIR/data" --max-files 120
            --max-connections-per-address $((CLIENTS + 64)))
start_server "$OUT_DIR/server" "${serve_args[@]}"
server_http_port "$OUT_DIR/server"
P=$SERVER_HTTP_PORT
if ! wait_http_ok "http://127.0.0.1:$P/live/index.m3u8" 30; then
    echo "error: livefeed's playlist never answered; see $OUT_DIR/server.err" >&2
    exit 1
fi
echo "origin: \`target/release/livefeed serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0 ${serve_args[*]/#$OUT_DIR/\$OUT_DIR}\` (HTTP port $P, pid $SERVER_PID)"

# start_nginx DIR ORIGIN_PORT: deploy/nginx/livefeed-edge.conf with only its addresses changed,
# in DIR, on a free port (NGINX_PORT), its origin at ORIGIN_PORT; its pid in NGINX_PID.
start_nginx() {
    local dir=$1 origin=$2
    mkdir -p "$dir"
    NGINX_PORT=$(free_port)
    sed -e "s/127.0.0.1:8888/127.0.0.1:$origin/" -e "s/127.0.0.1:8080/127.0.0.1:$NGINX_PORT/" \
        -e "s/worker_connections 8192/worker_connections $need/" \
        "$DEPLOY/nginx/livefeed-edge.conf" >"$dir/livefeed-edge.conf"
    nginx -p "$dir/" -e "$dir/error.log" -c "$dir/livefeed-edge.conf" >"$dir/stdout" 2>"$dir/stderr" &
    NGINX_PID=$!
    BG_PIDS+=("$NGINX_PID")
}

NG=$OUT_DIR/nginx
start_nginx "$NG" "$P"
NP=$NGINX_PORT
NG_PID=$NGINX_PID

VA=$OUT_DIR/varnish
mkdir -p "$VA"
VP=$(free_port)
sed -e "s/\.port = \"8888\"/.port = \"$P\"/" "$DEPLOY/varnish/livefeed.vcl" >"$VA/livefeed.vcl"
varnishd -F -f "$VA/livefeed.vcl" -a "127.0.0.1:$VP" -n "$VA/work" -s malloc,256m \
    >"$VA/stdout" 2>"$VA/stderr" &
VARNISH_PID=$!
BG_PIDS+=("$VARNISH_PID")
# The second tier: the same nginx file, its origin the Varnish above.
N2=$OUT_DIR/nginx-tier2
start_nginx "$N2" "$VP"
N2P=$NGINX_PORT
NGINX2_PID=$NGINX_PID
for url in "http://127.0.0.1:$NP/live/index.m3u8" "http://127.0.0.1:$VP/live/index.m3u8" \
    "http://127.0.0.1:$N2P/live/index.m3u8"; do
    if ! wait_http_ok "$url" 30; then
        echo "error: no answer from $url; see $NG/stderr and $VA/stderr" >&2
        exit 1
    fi
done
sleep 1
nginx_pids="$NG_PID $(ps -o pid= --ppid "$NG_PID" | tr -s ' \n' ' ')"
varnish_pids="$VARNISH_PID $(ps -o pid= --ppid "$VARNISH_PID" | tr -s ' \n' ' ')"
nginx2_pids="$NGINX2_PID $(ps -o pid= --ppid "$NGINX2_PID" | tr -s ' \n' ' ')"
echo "nginx: edge on 127.0.0.1:$NP (pids $nginx_pids); varnish: edge on 127.0.0.1:$VP (pids $varnish_pids); two tiers: nginx on 127.0.0.1:$N2P (pids $nginx2_pids) in front of that varnish"
echo

hls_requests() {
    curl -s "http://127.0.0.1:$P/metrics" | python3 -c '
import json, sys
out = {}
for line in sys.stdin:
    if line.startswith("livefeed_hls_requests_total{"):
        labels, n = line.rsplit("} ", 1)
        out[labels[len("livefeed_hls_requests_total{"):]] = int(float(n))
print(json.dumps(out))'
}

for phase in $PHASES; do
    cpu_args=(--cpu "origin=$SERVER_PID")
    case $phase in
        direct) url="http://127.0.0.1:$P/live/index.m3u8" ;;
        nginx) url="http://127.0.0.1:$NP/live/index.m3u8"
               for pid in $nginx_pids; do cpu_args+=(--cpu "cache_$pid=$pid"); done ;;
        varnish) url="http://127.0.0.1:$VP/live/index.m3u8"
                 for pid in $varnish_pids; do cpu_args+=(--cpu "cache_$pid=$pid"); done ;;
        two-tier) url="http://127.0.0.1:$N2P/live/index.m3u8"
                  for pid in $nginx2_pids $varnish_pids; do cpu_args+=(--cpu "cache_$pid=$pid"); done ;;
        *) echo "error: unknown phase $phase" >&2; exit 2 ;;
    esac
    sleep 2
    echo "Phase $phase: load average before $(cut -d' ' -f1-3 /proc/loadavg); \`hls-load --mode blocking --url $url --clients $CLIENTS --warmup $WARMUP --duration $DURATION\`"
    before=$(hls_requests)
    from=$(date +%s%N)
    status=0
    timeout $((WARMUP + DURATION + 90)) "$LOADGEN" --mode blocking --url "$url" \
        --timestamps "http://127.0.0.1:$P/live/timestamps.json" --clients "$CLIENTS" \
        --warmup "$WARMUP" --duration "$DURATION" --threads "$GEN_THREADS" \
        --clk-tck "$CLK_TCK" --label "$phase" "${cpu_args[@]}" \
        >"$OUT_DIR/$phase.json" 2>"$OUT_DIR/$phase.err" || status=$?
    to=$(date +%s%N)
    after=$(hls_requests)
    curl -s "http://127.0.0.1:$P/live/timestamps.json" >"$OUT_DIR/$phase-timestamps.json"
    echo "{\"before\": $before, \"after\": $after, \"from_ns\": $from, \"to_ns\": $to}" \
        >"$OUT_DIR/$phase-origin.json"
    if [ "$status" -ne 0 ]; then
        echo "**load generator exited with status $status** (log: $OUT_DIR/$phase.err)"
    fi
    echo
done

python3 - "$OUT_DIR" "$PHASES" <<'EOF'
import json, os, sys
out, phases = sys.argv[1], sys.argv[2].split()
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except (OSError, ValueError):
        return None
rows = {}
for p in phases:
    run, origin, ts = load(f"{p}.json"), load(f"{p}-origin.json"), load(f"{p}-timestamps.json")
    if not (run and origin and ts):
        continue
    parts = sum(1 for s in ts["segments"] for part in s["parts"]
                if origin["from_ns"] <= part["available_unix_ns"] < origin["to_ns"])
    grown = {k: v - origin["before"].get(k, 0) for k, v in origin["after"].items()}
    grown = {k: v for k, v in grown.items() if v > 0}
    total = sum(grown.values())
    w = run["window_s"]
    cpu = run["cpu_s"]
    cache = sum(v for k, v in cpu.items() if k.startswith("cache_") and v is not None)
    rows[p] = dict(run=run, parts=parts, total=total, grown=grown, w=w,
                   origin_cpu=cpu.get("origin"), cache_cpu=cache if p != "direct" else None)
def f(v, fmt="{:.1f}"):
    return "–" if v is None else fmt.format(v)
cols = [p for p in phases if p in rows]
names = {"direct": "origin directly", "nginx": "through nginx", "varnish": "through Varnish",
         "two-tier": "through nginx → Varnish"}
print("## Results")
print()
print("| | " + " | ".join(names.get(p, p) for p in cols) + " |")
print("|---|" + "---:|" * len(cols))
def row(label, fn):
    print(f"| {label} | " + " | ".join(fn(rows[p]) for p in cols) + " |")
row("clients", lambda r: str(r["run"]["clients"]))
row("viewer requests/s (playlist + part)", lambda r: f(r["run"]["requests_per_s"], "{:.0f}"))
row("errors", lambda r: str(r["run"]["errors"]) + (" " + json.dumps(r["run"]["errors_by_kind"]) if r["run"]["errors"] else ""))
row("parts fetched per client: min / median / max", lambda r: " / ".join(
    f(r["run"]["parts_per_client"].get(k), "{:.0f}") for k in ("min", "p50", "max")))
row("parts produced (whole phase, warm-up included)", lambda r: str(r["parts"]))
row("**origin LL-HLS requests per part produced**", lambda r: "**" + f(r["total"] / r["parts"] if r["parts"] else None, "{:.2f}") + "**")
row("… not counting each client's first (plain) playlist", lambda r: f(
    (r["total"] - sum(v for k, v in r["grown"].items() if k.startswith('kind="playlist"'))) / r["parts"]
    if r["parts"] else None, "{:.2f}"))
row("origin requests by kind (whole phase)", lambda r: ", ".join(f"{k.replace(chr(34), '')}: {v}" for k, v in sorted(r["grown"].items())))
row("**part delivery p50** (ms): arrival − completed on the origin", lambda r: "**" + f(r["run"]["delivery_ms"].get("p50")) + "**")
row("part delivery p95 / p99 / max (ms)", lambda r: " / ".join(f(r["run"]["delivery_ms"].get(q)) for q in ("p95", "p99", "max")))
row("capture → part at the client p50 / p95 (ms)", lambda r: " / ".join(f(r["run"]["capture_to_client_ms"].get(q)) for q in ("p50", "p95")))
row("origin CPU s in the window (% of one core)", lambda r: f"{f(r['origin_cpu'], '{:.2f}')} ({f(None if r['origin_cpu'] is None else 100 * r['origin_cpu'] / r['w'], '{:.0f}')} %)")
row("cache CPU s in the window (% of one core)", lambda r: "–" if r["cache_cpu"] is None else f"{r['cache_cpu']:.2f} ({100 * r['cache_cpu'] / r['w']:.0f} %)")
row("load generator CPU s", lambda r: f(r["run"]["cpu_s"].get("load_generator"), "{:.2f}"))
EOF
