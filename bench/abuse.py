#!/usr/bin/env python3
"""bench/abuse.py: the load clients and the tables of bench/abuse.sh (issue 12). Not run alone.

  abuse.py flooder PORT SOURCE_IP SECS BATCH OUT.json    POST batches as fast as answered
  abuse.py legit PORT SECS POST_MS CHART_MS OUT.json     1 sample every POST_MS, chart every CHART_MS
  abuse.py flood-summary OUT.json FLOODER.json... -- LEGIT.json SERVER.json
  abuse.py idle PID HTTP_PORT RTSP_PORT N_HTTP N_RTSP HOLD_SECS TRIES TIMEOUT OUT.json
  abuse.py tables BEFORE_DIR AFTER_DIR                   the markdown tables

Every socket goes to 127.0.0.x; every loop ends by a deadline.
"""
import http.client
import json
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time


def pct(values, p):
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    v = sorted(values)
    k = -(-len(v) * p // 100)
    return v[min(len(v) - 1, max(0, k - 1))]


# ---------------------------------------------------------------- metrics flood

SAMPLE = ('{"path":"flood","stage":"capture_to_displayed","client":"attacker",'
          '"unix_ms":NOW_MS,"latency_ms":%d}')


def flooder(port, source_ip, secs, batch, out):
    """POSTs batches of BATCH samples over one keep-alive connection from SOURCE_IP, each as
    soon as the previous one is answered, for SECS. Per second: samples accepted (200) and
    refused (429), other answers and errors."""
    template = '{"samples":[' + ",".join(SAMPLE % (20 + i % 97) for i in range(batch)) + "]}"
    assert len(template) + 20 * batch < 64 * 1024, "body must stay under 64 KiB"
    headers = {"Content-Type": "application/json"}

    def connect():
        return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source_ip, 0))

    conn = connect()
    start = time.time()
    deadline = start + secs
    per_sec = {}  # second -> [accepted samples, refused samples, 200s, 429s, other]
    other = {}
    errors = 0
    while time.time() < deadline:
        body = template.replace("NOW_MS", str(int(time.time() * 1000)))
        try:
            conn.request("POST", "/api/v1/metrics", body, headers)
            r = conn.getresponse()
            data = r.read()
        except Exception:
            errors += 1
            conn.close()
            time.sleep(0.01)
            conn = connect()
            continue
        sec = int(time.time() - start)
        row = per_sec.setdefault(sec, [0, 0, 0, 0, 0])
        if r.status == 200:
            row[0] += json.loads(data)["accepted"]
            row[2] += 1
        elif r.status == 429:
            row[1] += batch
            row[3] += 1
        else:
            row[4] += 1
            other[r.status] = other.get(r.status, 0) + 1
        if r.getheader("connection", "").lower() == "close":
            conn.close()
            conn = connect()
    conn.close()
    json.dump({"source": source_ip, "wall": time.time() - start, "per_sec": per_sec,
               "other_status": other, "errors": errors}, open(out, "w"))


def legit(port, secs, post_ms, chart_ms, out):
    """The legitimate client on 127.0.0.1: one sample every POST_MS and the dashboard's chart
    query (GET /api/v1/metrics?path=flood, default range) every CHART_MS, each on its own
    keep-alive connection, on a fixed schedule (a slot missed while waiting is skipped)."""
    results = {}

    def loop(name, period, make_request):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        lat, bad, errors, made = [], {}, 0, 0
        start = time.time()
        deadline = start + secs
        k = 0
        while True:
            slot = start + k * period
            if slot >= deadline:
                break
            now = time.time()
            if slot > now:
                time.sleep(slot - now)
            method, url, body, headers = make_request()
            made += 1
            t = time.perf_counter()
            try:
                conn.request(method, url, body, headers)
                r = conn.getresponse()
                r.read()
                ms = (time.perf_counter() - t) * 1000
                if r.status == 200:
                    lat.append(ms)
                else:
                    bad[r.status] = bad.get(r.status, 0) + 1
            except Exception:
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            # the next slot that is still ahead
            k = max(k + 1, int((time.time() - start) / period) + 1)
        conn.close()
        results[name] = {"slots": int(-(-secs // period)), "made": made, "ok_ms": lat,
                         "bad_status": bad, "errors": errors}

    def post():
        body = json.dumps({"samples": [{"path": "legit", "stage": "capture_to_displayed",
                                        "client": "dashboard", "unix_ms": int(time.time() * 1000),
                                        "latency_ms": 42.0}]})
        return "POST", "/api/v1/metrics", body, {"Content-Type": "application/json"}

    def chart():
        return "GET", "/api/v1/metrics?path=flood", None, {}

    threads = [threading.Thread(target=loop, args=("post", post_ms / 1000, post)),
               threading.Thread(target=loop, args=("chart", chart_ms / 1000, chart))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    json.dump(results, open(out, "w"))


def flood_summary(out, flooder_files, legit_file, server_file):
    fl = [json.load(open(f)) for f in flooder_files]
    lg = json.load(open(legit_file))
    sv = json.load(open(server_file))
    secs = max(f["wall"] for f in fl)
    totals = [0, 0, 0, 0, 0]
    per_sec_total = {}
    for f in fl:
        for s, row in f["per_sec"].items():
            for i in range(5):
                totals[i] += row[i]
            per_sec_total.setdefault(int(s), [0, 0])
            per_sec_total[int(s)][0] += row[0]
            per_sec_total[int(s)][1] += row[1]
    full = [v for s, v in per_sec_total.items() if s < int(secs)]
    n = int(secs)
    first = [per_sec_total.get(s, [0, 0])[0] for s in range(0, min(5, n))]
    last = [per_sec_total.get(s, [0, 0])[0] for s in range(max(0, n - 5), n)]
    d = {
        "secs": secs,
        "accepted_per_s": totals[0] / secs,
        "refused_per_s": totals[1] / secs,
        "accepted_per_s_min": min((v[0] for v in full), default=0),
        "accepted_per_s_max": max((v[0] for v in full), default=0),
        "accepted_per_s_first5": sum(first) / max(1, len(first)),
        "accepted_per_s_last5": sum(last) / max(1, len(last)),
        "req_200": totals[2], "req_429": totals[3], "req_other": totals[4],
        "errors": sum(f["errors"] for f in fl),
        "other_status": [f["other_status"] for f in fl],
        "per_source": {f["source"]: sum(r[0] for r in f["per_sec"].values()) / f["wall"] for f in fl},
    }
    for name in ("post", "chart"):
        x = lg[name]
        d[name] = {"slots": x["slots"], "made": x["made"], "ok": len(x["ok_ms"]), "p50": pct(x["ok_ms"], 50),
                   "p99": pct(x["ok_ms"], 99), "max": max(x["ok_ms"], default=None),
                   "bad_status": x["bad_status"], "errors": x["errors"]}
    d.update(sv)
    json.dump(d, open(out, "w"), indent=1)


# ---------------------------------------------------------------- idle-connection flood

def open_idle(n, source_ip, port, deadline):
    """Opens N non-blocking connections from SOURCE_IP that never send a byte, 50 every 20 ms
    (a burst of all at once would overflow the listen backlog and leave most of them
    half-open on the server's side, waiting for SYN-ACK retransmits); waits (until DEADLINE)
    for them to complete. Returns (sockets, {connected, failed, pending})."""
    socks, state, by_fd = [], {}, {}
    poller = select.poll()
    for i in range(n):
        if time.time() >= deadline:
            break
        if i and i % 50 == 0:
            time.sleep(0.02)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((source_ip, 0))
        rc = s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        by_fd[s.fileno()] = s
        if rc == 0:
            state[s.fileno()] = "connected"
        elif rc in (115, 11):  # EINPROGRESS, EAGAIN
            state[s.fileno()] = "pending"
            poller.register(s.fileno(), select.POLLOUT)
        else:
            state[s.fileno()] = "failed"
    while "pending" in state.values() and time.time() < deadline:
        for fd, ev in poller.poll(100):
            poller.unregister(fd)
            err = by_fd[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            state[fd] = "connected" if err == 0 else "failed"
    counts = {k: list(state.values()).count(k) for k in ("connected", "failed", "pending")}
    return socks, counts


def accept_queue(port):
    """Connections waiting in the listener's accept queue (ss's Recv-Q of a LISTEN socket)."""
    try:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
        return int(out.split()[1])
    except Exception:
        return None


def closed_by_server(socks):
    """How many of these connections the server has closed (EOF or reset) or answered (a
    refusal is an answer, then a close)."""
    closed = answered = 0
    for s in socks:
        try:
            data = s.recv(4096, socket.MSG_PEEK)
            if data == b"":
                closed += 1
            else:
                answered += 1  # an answer (e.g. 429/503); the close may follow
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed, answered


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def probe(kind, port, timeout):
    """A fresh client from 127.0.0.1: connect, ask, read the whole answer. (ms, status) or
    (None, reason) when it did not finish within TIMEOUT seconds."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except socket.timeout:
        return None, "connect timed out"
    except OSError as e:
        return None, f"connect failed: {e.strerror}"
    try:
        if kind == "http":
            s.sendall(f"GET /api/v1/paths HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        else:
            s.sendall(f"OPTIONS rtsp://127.0.0.1:{port}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
        buf = b""
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None, "timed out"
            s.settimeout(left)
            chunk = s.recv(65536)
            if chunk:
                buf += chunk
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                length = None
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                if (length is not None and len(body) >= length) or (length is None and (kind == "rtsp" or not chunk)):
                    status = head.split(b"\r\n")[0].decode(errors="replace")
                    return (time.perf_counter() - t0) * 1000, status
            if not chunk:
                return None, "closed without an answer" if not buf else "closed mid-answer"
    except socket.timeout:
        return None, "timed out"
    except OSError as e:
        return None, f"failed: {e.strerror}"
    finally:
        s.close()


def idle(pid, http_port, rtsp_port, n_http, n_rtsp, hold, tries, timeout, out):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n_http + n_rtsp + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    t_start = time.time()
    fds_before = fd_count(pid)
    http_socks, http_counts = open_idle(n_http, "127.0.0.2", http_port, t_start + 5)
    rtsp_socks, rtsp_counts = open_idle(n_rtsp, "127.0.0.3", rtsp_port, time.time() + 5)
    t_opened = time.time()
    time.sleep(hold)
    fds = fd_count(pid)
    queues = (accept_queue(http_port), accept_queue(rtsp_port))
    http_closed = closed_by_server(http_socks)
    rtsp_closed = closed_by_server(rtsp_socks)
    # The fresh clients: one HTTP try a second and one RTSP try a second (half a second
    # apart), each on its own connection and thread, each allowed TIMEOUT s. A fast server
    # answers each before the next starts; a stuck one costs TIMEOUT + TRIES s in all.
    results = {"http": [None] * tries, "rtsp": [None] * tries}

    def run(kind, port, i):
        results[kind][i] = probe(kind, port, timeout)

    threads = []
    t0 = time.time()
    for i in range(tries):
        for kind, port, offset in (("http", http_port, 0.0), ("rtsp", rtsp_port, 0.5)):
            at = t0 + i + offset
            time.sleep(max(0.0, at - time.time()))
            th = threading.Thread(target=run, args=(kind, port, i))
            th.start()
            threads.append(th)
    for th in threads:
        th.join()
    fds_after_probes = fd_count(pid)
    for s in http_socks + rtsp_socks:
        s.close()
    d = {"fds_before": fds_before, "fds": fds, "accept_queue_http": queues[0], "accept_queue_rtsp": queues[1], "fds_after_probes": fds_after_probes,
         "http_flood": http_counts, "rtsp_flood": rtsp_counts,
         "http_closed_by_server": http_closed[0], "http_answered": http_closed[1],
         "rtsp_closed_by_server": rtsp_closed[0], "rtsp_answered": rtsp_closed[1],
         "open_secs": t_opened - t_start, "hold": hold, "tries": tries, "timeout": timeout}
    for kind in ("http", "rtsp"):
        rs = results[kind]
        ok = [ms for ms, _ in rs if ms is not None]
        d[kind] = {"ok": len(ok), "p50": pct(ok, 50), "max": max(ok, default=None),
                   "statuses": sorted({st for ms, st in rs if ms is not None}),
                   "failures": [st for ms, st in rs if ms is None]}
    d["step_secs"] = time.time() - t_start
    json.dump(d, open(out, "w"), indent=1)


# ---------------------------------------------------------------- tables

def f_ms(v):
    return "–" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def ratio(a, b):
    if a in (None, 0) or b is None:
        return "–"
    r = b / a
    return f"{r:.2f}" if r >= 0.01 else f"{r:.4f}"


def mb(n):
    return f"{n / 1e6:,.1f} MB"


def tables(before_dir, after_dir):
    b = json.load(open(os.path.join(before_dir, "flood.json")))
    a = json.load(open(os.path.join(after_dir, "flood.json")))
    secs = round(a["secs"])
    print(f"## Metrics flood: 2 clients (127.0.0.2, 127.0.0.3) POSTing batches of {b['batch']} samples as fast as answered, {secs} s")
    print()
    print("| | before | after | after / before |")
    print("|---|---:|---:|---:|")
    print(f"| flood samples accepted (200), per s | {b['accepted_per_s']:,.0f} | {a['accepted_per_s']:,.0f} | {ratio(b['accepted_per_s'], a['accepted_per_s'])} |")
    print(f"| … per second, min – max | {b['accepted_per_s_min']:,} – {b['accepted_per_s_max']:,} | {a['accepted_per_s_min']:,} – {a['accepted_per_s_max']:,} | |")
    print(f"| … in the first 5 s → the last 5 s | {b['accepted_per_s_first5']:,.0f} → {b['accepted_per_s_last5']:,.0f} | {a['accepted_per_s_first5']:,.0f} → {a['accepted_per_s_last5']:,.0f} | |")
    print(f"| flood samples refused (429), per s | {b['refused_per_s']:,.0f} | {a['refused_per_s']:,.0f} | |")
    for x in (b, a):
        x["_req"] = f"{x['req_200']:,} / {x['req_429']:,} / {x['req_other'] + x['errors']:,}"
    print(f"| flood requests: 200 / 429 / other or failed | {b['_req']} | {a['_req']} | |")

    def lat_rows(name, label):
        for p in ("p50", "p99", "max"):
            print(f"| {label} {p} ms | {f_ms(b[name][p])} | {f_ms(a[name][p])} | {ratio(b[name][p], a[name][p])} |")
        bb, aa = b[name], a[name]
        desc = lambda x: f"{x['made']} of {x['slots']}, {x['ok']} answered 200" + (f" ({x['errors']} failed, non-200: {x['bad_status']})" if x['errors'] or x['bad_status'] else "")
        print(f"| {label}: requests sent of the slots (a slot is skipped while the last answer is awaited) | {desc(bb)} | {desc(aa)} | |")

    lat_rows("post", "legit small POST (1 sample / 100 ms, 127.0.0.1)")
    lat_rows("chart", "chart query (GET /api/v1/metrics?path=flood / 500 ms)")
    print(f"| SQLite file at the end (metrics.sqlite3 + -wal) | {mb(b['db_bytes'])} | {mb(a['db_bytes'])} | {ratio(b['db_bytes'], a['db_bytes'])} |")
    print(f"| server CPU during the flood, % of one core | {b['cpu_pct']:.0f} | {a['cpu_pct']:.0f} | |")
    print()

    b = json.load(open(os.path.join(before_dir, "idle.json")))
    a = json.load(open(os.path.join(after_dir, "idle.json")))
    print(f"## Idle-connection flood: server under `prlimit --nofile={b['nofile']}:{b['nofile']}`; "
          f"{b['n_http']} silent connections to HTTP from 127.0.0.2, then {b['n_rtsp']} to RTSP from 127.0.0.3; measured {b['hold']:.0f} s later")
    print()
    print("| | before | after | after / before |")
    print("|---|---:|---:|---:|")
    fl = lambda x, k: f"{x[k]['connected']:,} connected, {x[k]['failed']:,} failed, {x[k]['pending']:,} pending"
    print(f"| flood connections to HTTP (TCP handshake) | {fl(b, 'http_flood')} | {fl(a, 'http_flood')} | |")
    print(f"| flood connections to RTSP (TCP handshake) | {fl(b, 'rtsp_flood')} | {fl(a, 'rtsp_flood')} | |")
    cl = lambda x: f"HTTP {x['http_closed_by_server'] + x['http_answered']:,}, RTSP {x['rtsp_closed_by_server'] + x['rtsp_answered']:,}"
    print(f"| flood connections the server had answered (a refusal) or closed when measured | {cl(b)} | {cl(a)} | |")
    q = lambda x: f"HTTP {x['accept_queue_http']}, RTSP {x['accept_queue_rtsp']}"
    print(f"| connections waiting in the listeners' accept queues (`ss` Recv-Q) when measured | {q(b)} | {q(a)} | |")
    print(f"| server open fds: before the flood → when measured | {b['fds_before']} → **{b['fds']}** | {a['fds_before']} → **{a['fds']}** | {ratio(b['fds'], a['fds'])} |")

    def probe_cell(x, k):
        r = x[k]
        n = x["tries"]
        if r["ok"] == 0:
            fails = sorted(set(r["failures"]))
            return f"**{', '.join(fails)}** ({n} of {n}, {x['timeout']:.0f} s each)"
        s = f"{f_ms(r['p50'])} / {f_ms(r['max'])}"
        if r["ok"] < n:
            s += f" ({n - r['ok']} of {n}: {', '.join(sorted(set(r['failures'])))})"
        return s

    for k, label in (("http", "fresh client: `GET /api/v1/paths` answered, p50 / max ms"),
                     ("rtsp", "fresh client: RTSP `OPTIONS` answered, p50 / max ms")):
        rb, ra = b[k], a[k]
        r = ratio(rb["p50"], ra["p50"]) if rb["ok"] and ra["ok"] else "–"
        print(f"| {label} ({b['tries']} tries) | {probe_cell(b, k)} | {probe_cell(a, k)} | {r} |")
        st = lambda x: ", ".join(x[k]["statuses"]) or "–"
        print(f"| … status line of the answers | {st(b)} | {st(a)} | |")
    tmof = lambda x: f"yes ({x['emfile_lines']:,} lines)" if x["emfile_lines"] else "no"
    print(f"| \"Too many open files\" in the server's stderr | {tmof(b)} | {tmof(a)} | |")
    print(f"| log lines the server wrote during the step ({b['step_secs']:.0f} / {a['step_secs']:.0f} s) | {b['log_lines']:,} | {a['log_lines']:,} | |")
    print(f"| server still answering after the step (`GET /api/v1/time`) | {b['alive_after']} | {a['alive_after']} | |")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "flooder":
        flooder(int(args[0]), args[1], float(args[2]), int(args[3]), args[4])
    elif cmd == "legit":
        legit(int(args[0]), float(args[1]), float(args[2]), float(args[3]), args[4])
    elif cmd == "flood-summary":
        sep = args.index("--")
        flood_summary(args[0], args[1:sep], args[sep + 1], args[sep + 2])
    elif cmd == "idle":
        idle(int(args[0]), int(args[1]), int(args[2]), int(args[3]), int(args[4]),
             float(args[5]), int(args[6]), float(args[7]), args[8])
    elif cmd == "tables":
        tables(args[0], args[1])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
