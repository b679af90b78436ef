#!/usr/bin/env bash
# bench/transcode.sh: what AAC → Opus (WebRTC viewers of an AAC publisher) costs per path.
# Transcodes SECS seconds of an ffmpeg-encoded 1 kHz AAC tone RUNS times per configuration
# (48/44.1 kHz, stereo/mono; 44.1 kHz is resampled) in one thread and prints the thread CPU
# time per second of audio (p50, p95) and the share of one core a live path costs: a markdown
# table for BENCHMARKS.md. Needs ffmpeg and libopus0 (scripts/install-deps).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-30}
RUNS=${RUNS:-9}
cargo run --quiet --release -p livefeed-transcode --example transcode_bench -- "$SECS" "$RUNS"
