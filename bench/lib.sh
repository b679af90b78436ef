# bench/lib.sh: helpers shared by the bench scripts. Sourced, not run.
# Everything here talks to 127.0.0.1 only, and every process it starts is stopped by its PID.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN=${LIVEFEED_BIN:-$ROOT/target/release/livefeed}

# checkout_desc: the commit the checkout is at, and whether tracked files were changed.
checkout_desc() {
    (
        cd "$ROOT" || exit 0
        git rev-parse --short HEAD 2>/dev/null || echo '?'
        [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' + uncommitted changes'
        true
    ) | tr -d '\n'
}

# machine_desc: CPUs and their model.
machine_desc() {
    echo "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
}

require_bin() {
    if [ ! -x "$BIN" ]; then
        echo "error: $BIN is missing." >&2
        echo "The bench scripts build nothing themselves. Build the release binary first:" >&2
        echo "    cd $ROOT && cargo build --release" >&2
        echo "(or point LIVEFEED_BIN at a livefeed binary)." >&2
        exit 2
    fi
}

require_tool() { # NAME WHY
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "error: '$1' not found; it is needed for $2" >&2
        exit 2
    fi
}

# Background processes we started; stopped by PID on exit (never by name). A background
# shell function is a subshell, so its children (found by parent PID) are stopped too.
BG_PIDS=()
kill_tree() { # PID [DEPTH]
    local pid=$1 depth=${2:-0} child
    if [ "$depth" -lt 4 ]; then
        for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do kill_tree "$child" $((depth + 1)); done
    fi
    if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
}
bench_cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill_tree "$p"; done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    BG_PIDS=()
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# start_server LOGPREFIX [SERVE ARGS...]: runs `livefeed serve` on 127.0.0.1:0 (the OS picks a
# free port), with any extra arguments appended, and reads the real port from its first stdout
# line. Sets SERVER_PID and SERVER_PORT (RTSP); server_http_port then finds the HTTP port.
start_server() {
    local prefix=$1 i
    shift
    local rtmp=()
    # Builds older than the RTMP listener (before/after runs) do not know the flag.
    if "$BIN" serve --help 2>/dev/null | grep -q -- --rtmp-address; then rtmp=(--rtmp-address 127.0.0.1:0); fi
    if "$BIN" serve --help 2>/dev/null | grep -q -- --srt-address; then rtmp+=(--srt-address 127.0.0.1:0); fi
    "$BIN" serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0 "${rtmp[@]}" "$@" >"$prefix.out" 2>"$prefix.err" &
    SERVER_PID=$!
    BG_PIDS+=("$SERVER_PID")
    SERVER_PORT=
    for i in $(seq 100); do # at most ~10 s
        if [ -s "$prefix.out" ]; then
            SERVER_PORT=$(sed -n '1s/^livefeed serving RTSP on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$prefix.out" || true)
        fi
        if [ -n "$SERVER_PORT" ]; then return 0; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "error: livefeed serve did not report its port; see $prefix.err" >&2
    exit 1
}

# server_http_port LOGPREFIX: after start_server, waits (at most ~10 s) for the server's
# "livefeed serving HTTP on 127.0.0.1:PORT" line and sets SERVER_HTTP_PORT.
server_http_port() {
    local prefix=$1 i
    SERVER_HTTP_PORT=
    for i in $(seq 100); do
        SERVER_HTTP_PORT=$(sed -n 's/^livefeed serving HTTP on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$prefix.out" | head -1 || true)
        if [ -n "$SERVER_HTTP_PORT" ]; then return 0; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "error: livefeed serve did not report its HTTP port; see $prefix.err" >&2
    exit 1
}

# wait_http_ok URL SECONDS: waits until GET URL answers 2xx (one try every 0.2 s, each try at
# most 5 s, SECONDS in all); returns 1 if it never does.
wait_http_ok() {
    local url=$1 secs=$2 deadline
    deadline=$(($(date +%s) + secs))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    return 1
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago (for tools that cannot listen
# on port 0 and report the port, such as nginx).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# load_bin NAME OUT_DIR PREBUILT VAR: sets LOADGEN to PREBUILT when it is given (the value of
# the environment variable VAR), else builds the load client bench/NAME (release, in its own
# target dir; its log in OUT_DIR) and sets LOADGEN to it.
load_bin() {
    local name=$1 out=$2 prebuilt=$3 var=$4
    LOADGEN=$prebuilt
    if [ -z "$LOADGEN" ]; then
        require_tool cargo "building bench/$name (or set $var)"
        if ! cargo build --release --quiet --manifest-path "$BENCH_DIR/$name/Cargo.toml" \
            >"$out/$name-build.log" 2>&1; then
            echo "error: building bench/$name failed; see $out/$name-build.log" >&2
            exit 2
        fi
        LOADGEN=$BENCH_DIR/$name/target/release/$name
    fi
}

# hls_load_bin OUT_DIR CLIENTS: sets LOADGEN to bench/hls-load (built here, release, in its own
# target dir; or $HLS_LOAD_BIN) and raises the open-file limit for CLIENTS clients and the
# servers' sockets for them.
hls_load_bin() {
    local out=$1 clients=$2
    load_bin hls-load "$out" "${HLS_LOAD_BIN:-}" HLS_LOAD_BIN
    need=$((clients * 3 + 1024))
    if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
        ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    fi
}

stop_server() {
    if [ -n "${SERVER_PID:-}" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# cpu_ticks PID: utime+stime of a live process, in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the ")" that closes the command name).
cpu_ticks() {
    sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

# tap_bitrate URL SECONDS FPS FILE: reads URL with `ffmpeg -c copy` for SECONDS of stream time
# into FILE (raw H.264, Annex B), counts the access units with ffprobe and prints the
# elementary-stream bitrate in kbit/s (bytes * 8 / (frames / FPS)), or "n/a".
tap_bitrate() {
    local url=$1 secs=$2 fps=$3 file=$4 bytes frames
    if ! timeout $((secs + 20)) ffmpeg -hide_banner -loglevel error -rtsp_transport tcp \
        -i "$url" -t "$secs" -c copy -f h264 -y "$file" 2>"$file.err"; then
        echo "n/a"
        return 0
    fi
    bytes=$(stat -c %s "$file")
    frames=$(timeout 60 ffprobe -v error -count_packets -select_streams v:0 \
        -show_entries stream=nb_read_packets -of csv=p=0 "$file" 2>/dev/null | head -1 | tr -dc 0-9)
    if [ -z "$frames" ] || [ "$frames" -eq 0 ]; then
        echo "n/a"
        return 0
    fi
    python3 -c "import sys; b,f,r=map(float,sys.argv[1:]); print(f'{b*8/(f/r)/1000:.0f}')" "$bytes" "$frames" "$fps"
}
