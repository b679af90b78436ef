#!/usr/bin/env bash
# bench/store_ingest.sh: how many latency samples per second the metrics store takes (issue 5).
#
# 1. The store alone: `cargo run --release -p livefeed-store --example ingest_bench` inserts
#    batches of 1, 10, 100 and 1000 samples into a fresh SQLite store (WAL, synchronous=NORMAL,
#    the server's settings) for STORE_SECS each, folding seconds once a second as the server
#    does: samples/s and insert-call latency.
# 2. Through the server: `livefeed serve` (release binary, no stream) and CLIENTS Python
#    clients on loopback, each POSTing batches of BATCH samples to /api/v1/metrics over one
#    keep-alive connection as fast as the server acknowledges them, for HTTP_SECS: accepted
#    samples/s (total, and the median/min of the per-second rates), request latency
#    percentiles, the server's CPU. Every acknowledged sample is then counted back with
#    GET /api/v1/metrics (must equal the accepted total).
#
# Environment: STORE_SECS (5), HTTP_SECS (20), CLIENTS (4), BATCH (200),
#              OUT_DIR (a new /tmp/livefeed-bench.* dir). Needs python3, cargo (for step 1).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STORE_SECS=${STORE_SECS:-5}
HTTP_SECS=${HTTP_SECS:-20}
CLIENTS=${CLIENTS:-4}
BATCH=${BATCH:-200}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"
require_bin
require_tool python3 "the HTTP load clients"
require_tool cargo "the store-only example"
CLK_TCK=$(getconf CLK_TCK)

echo "# livefeed metrics store ingest (bench/store_ingest.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- checkout: $(checkout_desc); binary $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- machine: $(machine_desc); data on $(df -T "$OUT_DIR" | awk 'NR==2 {print $2}')"
echo "- raw output: $OUT_DIR"
echo

echo "## The store alone (no HTTP)"
echo
echo "\`cargo run --release -p livefeed-store --example ingest_bench -- $STORE_SECS 1 10 100 1000\`"
echo
(cd "$ROOT" && cargo run --release --quiet -p livefeed-store --example ingest_bench -- "$STORE_SECS" 1 10 100 1000) \
    >"$OUT_DIR/store.jsonl" 2>"$OUT_DIR/store.err"
python3 - "$OUT_DIR/store.jsonl" <<'PY'
import json, sys
print("| batch | samples/s | insert p50 ms | p95 | p99 | max | samples | file |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for line in open(sys.argv[1]):
    d = json.loads(line)
    i = d["insert_ms"]
    print(f"| {d['batch']} | {d['samples_per_s']:,.0f} | {i['p50']:.3f} | {i['p95']:.3f} | {i['p99']:.3f} | {i['max']:.1f} | {d['samples']:,} | {d['file_bytes'] / 1e6:.1f} MB |")
PY
echo

echo "## Through the server: $CLIENTS clients × batches of $BATCH, POST /api/v1/metrics, $HTTP_SECS s"
echo
# Throughput, not abuse: lift the per-address sample rate (--metrics-rate, default 5000/s).
LIVEFEED_METRICS_RATE=1000000000 LIVEFEED_DATA_DIR=$OUT_DIR/server-data start_server "$OUT_DIR/server"
server_http_port "$OUT_DIR/server"
wait_http_ok "http://127.0.0.1:$SERVER_HTTP_PORT/api/v1/time" 10
echo "Server: \`target/release/livefeed serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0\` with \`LIVEFEED_DATA_DIR=\$OUT_DIR/server-data LIVEFEED_METRICS_RATE=1000000000\`"
echo
c0=$(cpu_ticks "$SERVER_PID")
python3 - "$SERVER_HTTP_PORT" "$CLIENTS" "$BATCH" "$HTTP_SECS" "$OUT_DIR/http.json" <<'PY'
import http.client, json, sys, threading, time
port, clients, batch, secs, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
start = time.time()
deadline = start + secs
per_second = {}
latencies = []
errors = []
accepted_total = [0]
first_ms = int(start * 1000) - 1000
lock = threading.Lock()
kinds = ["browser-hls", "browser-webrtc", "receiver", "server"]

def client(k):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    n = 0
    while time.time() < deadline:
        now_ms = int(time.time() * 1000)
        samples = ",".join(
            '{"path":"bench","stage":"capture_to_displayed","client":"%s","unix_ms":%d,"latency_ms":%.1f}'
            % (kinds[(n + i) % 4], now_ms, 20 + (n + i) % 97) for i in range(batch))
        n += batch
        body = '{"samples":[' + samples + ']}'
        t = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/metrics", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
        except Exception as e:  # keep going: count it
            with lock:
                errors.append(str(e))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        ms = (time.perf_counter() - t) * 1000
        with lock:
            latencies.append(ms)
            if r.status == 200:
                acc = json.loads(data)["accepted"]
                accepted_total[0] += acc
                sec = int(time.time() - start)
                per_second[sec] = per_second.get(sec, 0) + acc
            else:
                errors.append(f"{r.status} {data[:200]!r}")

threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
wall = time.time() - start
latencies.sort()
pct = lambda p: latencies[min(len(latencies) - 1, max(0, -(-len(latencies) * p // 100) - 1))] if latencies else None
rates = sorted(v for s, v in per_second.items() if s < int(secs))
json.dump({"accepted": accepted_total[0], "wall": wall, "requests": len(latencies), "errors": errors[:5], "error_count": len(errors),
           "rate_total": accepted_total[0] / wall, "rate_median": rates[len(rates) // 2] if rates else None, "rate_min": rates[0] if rates else None,
           "p50": pct(50), "p95": pct(95), "p99": pct(99), "max": latencies[-1] if latencies else None,
           "since_ms": first_ms, "until_ms": int(time.time() * 1000) + 1000}, open(out, "w"))
PY
c1=$(cpu_ticks "$SERVER_PID")
sleep 2 # the last second is folded
python3 - "$OUT_DIR/http.json" "$SERVER_HTTP_PORT" "$c0" "$c1" "$CLK_TCK" <<'PY'
import json, sys, urllib.request
d = json.load(open(sys.argv[1]))
port, c0, c1, tck = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
q = f"http://127.0.0.1:{port}/api/v1/metrics?path=bench&since={d['since_ms']}&until={d['until_ms']}&step=3600000"
stored = sum(p["count"] for p in json.load(urllib.request.urlopen(q, timeout=30))["points"])
cpu = (c1 - c0) / tck
print("| accepted samples/s (total) | per-second median | per-second min | requests | POST p50 ms | p95 | p99 | max | errors | stored = accepted | server CPU |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
print(f"| {d['rate_total']:,.0f} | {d['rate_median']:,} | {d['rate_min']:,} | {d['requests']:,} | {d['p50']:.1f} | {d['p95']:.1f} | {d['p99']:.1f} | {d['max']:.1f} | {d['error_count']} | {stored:,} = {d['accepted']:,}: {'yes' if stored == d['accepted'] else 'NO'} | {cpu / d['wall'] * 100:.0f} % of one core |")
if d["errors"]:
    print()
    print("errors (first 5):", d["errors"])
PY
stop_server
