#!/usr/bin/env python3
"""Format the summary object of `livefeed --json` (the demo) as markdown.

usage: summary_table.py DEMO_JSONL [--target-decoded-p50 MS] [--target-server-p99 MS]

DEMO_JSONL is the demo's stdout: one JSON object per second, then one with "summary": true.
Figures are printed exactly as the demo reported them (ms); nothing is re-computed except
the per-second fps range.
"""
import argparse
import json
import sys

STAGES = [
    ("capture_to_encoded", "capture→encoded"),
    ("capture_to_ingest", "capture→ingest (server)"),
    ("capture_to_received", "capture→received (SEI, client)"),
    ("capture_to_decoded", "capture→decoded (pixel timecode)"),
    ("server_ingest_to_egress", "server ingest→egress (server-added)"),
]
# Printed only when the run has them (a stream with the test tone: `--audio tone`).
AUDIO_STAGES = [
    ("audio_capture_to_received", "audio capture→received (RTCP SR, client)"),
    ("av_offset", "A/V offset (beep − frame of the same second)"),
]


def fmt(v):
    return "–" if v is None else f"{v:.3f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--target-decoded-p50", type=float)
    ap.add_argument("--target-server-p99", type=float)
    args = ap.parse_args()

    summary, seconds = None, []
    with open(args.jsonl) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            obj = json.loads(line)
            if obj.get("summary"):
                summary = obj
            else:
                seconds.append(obj)
    if summary is None:
        print(f"error: no summary object in {args.jsonl} (did the demo finish?)", file=sys.stderr)
        return 1

    stages = summary.get("stages", {})
    print("| stage | n | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, label in STAGES:
        s = stages.get(key)
        if s is None:
            print(f"| {label} | 0 | – | – | – | – |")
            continue
        print(f"| {label} | {s.get('count', 0)} | {fmt(s.get('p50'))} | {fmt(s.get('p95'))} "
              f"| {fmt(s.get('p99'))} | {fmt(s.get('max'))} |")
    for key, label in AUDIO_STAGES:
        s = stages.get(key)
        if s is not None:
            print(f"| {label} | {s.get('count', 0)} | {fmt(s.get('p50'))} | {fmt(s.get('p95'))} "
                  f"| {fmt(s.get('p99'))} | {fmt(s.get('max'))} |")
    known = {k for k, _ in STAGES} | {k for k, _ in AUDIO_STAGES}
    for key in sorted(set(stages) - known):
        s = stages[key]
        print(f"| {key} | {s.get('count', 0)} | {fmt(s.get('p50'))} | {fmt(s.get('p95'))} "
              f"| {fmt(s.get('p99'))} | {fmt(s.get('max'))} |")
    print()

    keys = ["seconds", "frames_published", "frames_received", "frames_decoded", "lost",
            "mismatches", "missing_timecode", "decode_errors"]
    print("Frames: " + ", ".join(f"{k}={summary[k]}" for k in keys if k in summary))
    if seconds:
        dec = [s.get("decoded_fps") for s in seconds if s.get("decoded_fps") is not None]
        pub = [s.get("publisher_fps") for s in seconds if s.get("publisher_fps") is not None]
        if dec and pub:
            print(f"Per-second fps over {len(seconds)} s: published {min(pub)}–{max(pub)}, "
                  f"decoded {min(dec)}–{max(dec)}")

    checks = []
    dec = stages.get("capture_to_decoded", {})
    srv = stages.get("server_ingest_to_egress", {})
    if args.target_decoded_p50 is not None and dec.get("p50") is not None:
        ok = dec["p50"] <= args.target_decoded_p50
        checks.append(f"capture→decoded p50 {dec['p50']:.3f} ms ≤ {args.target_decoded_p50:g} ms: "
                      f"{'MET' if ok else 'MISSED'}")
    if args.target_server_p99 is not None and srv.get("p99") is not None:
        ok = srv["p99"] <= args.target_server_p99
        checks.append(f"server-added p99 {srv['p99']:.3f} ms ≤ {args.target_server_p99:g} ms: "
                      f"{'MET' if ok else 'MISSED'}")
    if srv.get("p50") is not None:
        print(f"Server-added latency (ingest→egress): p50 {srv['p50']:.3f} ms, p99 {srv['p99']:.3f} ms")
    for c in checks:
        print("Target: " + c)
    return 0


if __name__ == "__main__":
    sys.exit(main())
