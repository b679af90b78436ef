#!/bin/busybox sh
# The /init of scripts/vivid-test's VM (busybox ash, PID 1). It loads Debian's vivid virtual
# camera with one capture node, runs livefeed against it (devices; serve; publish + receive in
# YUYV and in a second pixel format; an unplug/replug of the camera while publishing), prints
# every output file to the serial console between `=== BEGIN name ===` / `=== END name ===`
# markers for the host to check, and powers off. It never stops early: whatever fails is left
# for the host's checks to name. Settings come from /etc/vivid-test.conf (written by the host).

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp
/bin/busybox --install -s
export PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo 1 >/proc/sys/kernel/printk # keep kernel messages off the console we parse

# Defaults, overridden by the host's file.
RES=640x360
FPS=30
SECOND_FORMAT=i420
RUN_SECS=12
UNPLUG_RUN_SECS=26
UNPLUG_AFTER=7
UNPLUG_SECS=3
VIVID_OPTS="n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0"
# shellcheck disable=SC1091
[ -f /etc/vivid-test.conf ] && . /etc/vivid-test.conf

out=/tmp/out
mkdir -p "$out"
URL=rtsp://127.0.0.1:8554/cam
API=http://127.0.0.1:8888/api/v1

say() { echo "vivid-guest: $*"; }

# The wall clock in µs (busybox date has no %N; adjtimex prints tv_sec and tv_usec).
now_us() {
  adjtimex | awk '/time.tv_sec/ {s = $2} /time.tv_usec/ {u = $2} END {printf "%d%06d\n", s, u}'
}

# Seconds since boot, with hundredths.
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# "UNIX_US NAME [DETAILS]" lines: the host times the unplug sequence against the logs.
event() {
  echo "$(now_us) $*" >>"$out/events.txt"
  say "[$(uptime_s)] $*"
}

# Prints output files (names relative to $out, globs allowed) between markers, each once, as
# soon as their step is over: a VM killed by the host's timeout still leaves the steps it did.
dump() {
  for pattern in "$@"; do
    for f in "$out"/$pattern; do
      [ -f "$f" ] || continue
      n=$(basename "$f")
      grep -qxF "$n" /tmp/dumped 2>/dev/null && continue
      echo "$n" >>/tmp/dumped
      echo "=== BEGIN $n ==="
      awk '{print}' "$f" # ends the last line
      echo "=== END $n ==="
    done
  done
}

# Prints the files not printed yet, then powers off.
finish() {
  event "guest-done"
  dump '*'
  echo "=== VIVID GUEST FINISHED ==="
  sync
  poweroff -f
  sleep 10
}

event "booted uptime=$(uptime_s) kernel=$(uname -r) cpus=$(nproc)"
ifconfig lo 127.0.0.1 netmask 255.0.0.0 up || ip link set lo up
hostname vivid

# 1. The modules, in dependency order (computed on the host); vivid last, with its options.
{
  while read -r m; do
    case "$m" in
      vivid.ko)
        # shellcheck disable=SC2086 # the options are separate words
        insmod "/lib/modules/vivid/$m" $VIVID_OPTS
        ;;
      *) insmod "/lib/modules/vivid/$m" ;;
    esac
    echo "insmod $m rc=$?"
  done </lib/modules/vivid/order
} >"$out/modules.txt" 2>&1
i=0
while [ ! -e /dev/video0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
event "modules-loaded $(ls /dev/video* 2>/dev/null | tr '\n' ' ')"

# What the driver registered: the platform device (for unbind/bind) and the video nodes.
PLATFORM_DRIVER=/sys/bus/platform/drivers/vivid
PLATFORM_DEV=
for d in "$PLATFORM_DRIVER"/vivid.*; do
  [ -e "$d" ] && PLATFORM_DEV=$(basename "$d") && break
done
{
  echo "platform_driver $PLATFORM_DRIVER"
  echo "platform_device ${PLATFORM_DEV:-none}"
  for v in /sys/class/video4linux/*; do
    [ -e "$v/name" ] && echo "node /dev/$(basename "$v") $(cat "$v/name")"
  done
  echo "cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
  echo "mem $(grep -m1 MemTotal /proc/meminfo)"
} >"$out/sysfs.txt"

# 2. The cameras livefeed sees.
livefeed --version >"$out/version.txt" 2>&1
livefeed devices >"$out/devices.txt" 2>"$out/devices.err"
echo $? >"$out/devices.rc"
event "devices rc=$(cat "$out/devices.rc")"

if livefeed publish --help 2>/dev/null | grep -q -- '--pixel-format'; then
  HAS_PIXEL_FORMAT=1
else
  HAS_PIXEL_FORMAT=0
fi
echo "$HAS_PIXEL_FORMAT" >"$out/has-pixel-format.txt"
dump modules.txt sysfs.txt version.txt 'devices.*' has-pixel-format.txt

# 3. The server.
mkdir -p /tmp/data
livefeed serve --rtsp-address 127.0.0.1:8554 --http-address 127.0.0.1:8888 \
  --webrtc-address 127.0.0.1:8189 --data-dir /tmp/data --publisher-grace 30 \
  >"$out/serve.out" 2>"$out/serve.err" &
SERVER_PID=$!
i=0
until wget -q -O /dev/null "$API/paths" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 300 ] || ! kill -0 $SERVER_PID 2>/dev/null; then
    event "server-not-up"
    finish
  fi
  sleep 0.1
done
event "server-up"

# One publisher run with its receiver: run_case NAME PIXEL_FORMAT SECONDS UNPLUG(0|1)
# (PIXEL_FORMAT yuyv is passed only when the binary has --pixel-format; others always are).
run_case() {
  name=$1 pixfmt=$2 secs=$3 unplug=$4
  set -- publish --url "$URL" --device /dev/video0 --resolution "$RES" --framerate "$FPS" \
    --json --duration "$secs"
  if [ "$pixfmt" != yuyv ] || [ "$HAS_PIXEL_FORMAT" = 1 ]; then
    set -- "$@" --pixel-format "$pixfmt"
  fi
  echo "livefeed $*" >"$out/$name-publish.cmd"
  event "$name publish-start"
  t0=$(uptime_s)
  livefeed "$@" >"$out/$name-publish.json" 2>"$out/$name-publish.err" &
  ppid=$!
  # The receiver starts once the path has a publisher (a reader of an empty path is refused).
  up=0
  while kill -0 $ppid 2>/dev/null; do
    if wget -q -O - "$API/paths/cam" 2>/dev/null | grep -q '"publisher":{'; then
      up=1
      break
    fi
    sleep 0.1
  done
  rpid=
  if [ $up = 1 ]; then
    # It stops 2 s before the publisher does, so it never sees the publisher leave.
    rsecs=$(awk -v d="$secs" -v t0="$t0" -v t="$(uptime_s)" \
      'BEGIN {r = d - (t - t0) - 2; if (r < 3) r = 3; printf "%.1f", r}')
    event "$name receive-start duration=$rsecs"
    livefeed receive --url "$URL" --json --duration "$rsecs" --timeout 20 \
      >"$out/$name-receive.json" 2>"$out/$name-receive.err" &
    rpid=$!
  else
    event "$name publisher-never-appeared"
  fi
  if [ $up = 1 ] && [ "$unplug" = 1 ]; then
    sleep "$UNPLUG_AFTER"
    ls /dev/video* >"$out/$name-nodes-before.txt" 2>&1
    event "unbind $PLATFORM_DEV"
    rc=0
    echo "$PLATFORM_DEV" >"$PLATFORM_DRIVER/unbind" || rc=1
    event "unbound rc=$rc nodes=$(ls /dev/video* 2>/dev/null | tr '\n' ' ')"
    sleep "$UNPLUG_SECS"
    event "bind $PLATFORM_DEV"
    rc=0
    echo "$PLATFORM_DEV" >"$PLATFORM_DRIVER/bind" || rc=1
    event "bound rc=$rc nodes=$(ls /dev/video* 2>/dev/null | tr '\n' ' ')"
    sleep 1
    ls /dev/video* >"$out/$name-nodes-after.txt" 2>&1
  fi
  if [ -n "$rpid" ]; then
    wait $rpid
    echo $? >"$out/$name-receive.rc"
    event "$name receive-done rc=$(cat "$out/$name-receive.rc")"
  fi
  wait $ppid
  echo $? >"$out/$name-publish.rc"
  event "$name publish-done rc=$(cat "$out/$name-publish.rc")"
  dump "$name-*"
}

run_case yuyv yuyv "$RUN_SECS" 0
run_case "$SECOND_FORMAT" "$SECOND_FORMAT" "$RUN_SECS" 0
run_case unplug yuyv "$UNPLUG_RUN_SECS" 1

kill -INT $SERVER_PID 2>/dev/null
sleep 1
kill $SERVER_PID 2>/dev/null
finish
