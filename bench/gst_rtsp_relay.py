#!/usr/bin/python3
"""bench/gst_rtsp_relay.py: gst-rtsp-server relaying one RTSP H.264 stream, for bench/rtsp_fanout.sh.

    gst_rtsp_relay.py --port PORT --source rtsp://127.0.0.1:X/live [--mount /live] [--address 127.0.0.1]

Serves rtsp://ADDRESS:PORT/MOUNT with one *shared* media factory (set_shared(True): every reader
of the mount gets the same pipeline) whose launch line is

    ( rtspsrc location=SOURCE protocols=tcp latency=0 buffer-mode=none ! rtph264depay
      ! rtph264pay name=pay0 pt=96 config-interval=-1 )

i.e. what a GStreamer user would write to re-serve a camera: the source is pulled once over
TCP-interleaved RTSP, depayloaded and payloaded again once (config-interval=-1: SPS/PPS before
every IDR, so a reader that joins mid-stream can decode from its first keyframe), and
gst-rtsp-server fans the RTP packets out to its readers. buffer-mode=none keeps the source's
RTP timestamps: with the default (slave) mode the jitter buffer re-derives them from arrival
times, the relayed frames come out 32-33 ms apart instead of 33.3, and ffmpeg reading the relay
with -c copy complains of non-monotonic DTS. The factory only offers TCP transport
(RTP/AVP/TCP, interleaved), as the bench's readers ask for, and the listen backlog is raised
from gst-rtsp-server's 5 to 1024 (--backlog): with 5, a batch of simultaneous connects
overflows it and the kernel drops SYNs, which the clients retry after 1, 3, 7 s. That only
slows the set-up, not the streaming. Everything else is gst-rtsp-server's defaults (its thread
pool's max-threads 1: one thread serves every client connection, beside the pipeline's
streaming threads; default session pool; no authentication).

It prints "gst-rtsp-server relaying SOURCE on rtsp://ADDRESS:PORT/MOUNT" on stdout once it
listens, and runs until SIGINT or SIGTERM. Needs Debian's python3-gi,
gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-good (rtspsrc, rtph264depay, rtph264pay);
run it with /usr/bin/python3 (the system interpreter that python3-gi is built for).
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True, help="RTSP port to listen on")
    ap.add_argument("--source", required=True, help="RTSP URL of the H.264 stream to relay")
    ap.add_argument("--mount", default="/live", help="mount point (default /live)")
    ap.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    ap.add_argument("--backlog", type=int, default=1024, help="listen backlog (default 1024)")
    args = ap.parse_args()

    Gst.init(None)
    for name in ("rtspsrc", "rtph264depay", "rtph264pay"):
        if Gst.ElementFactory.find(name) is None:
            sys.exit(f"error: GStreamer element {name} not found (Debian: gstreamer1.0-plugins-good)")

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    server.set_backlog(args.backlog)

    factory = GstRtspServer.RTSPMediaFactory()
    # Only characters that cannot break out of the launch line's property value.
    if any(c in args.source for c in ' "!()'):
        sys.exit("error: --source must not contain spaces, quotes, '!' or parentheses")
    factory.set_launch(
        f"( rtspsrc location={args.source} protocols=tcp latency=0 buffer-mode=none ! rtph264depay "
        f"! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(True)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    server.get_mount_points().add_factory(args.mount, factory)

    if server.attach(None) == 0:
        sys.exit(f"error: cannot listen on {args.address}:{args.port}")

    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(
        f"gst-rtsp-server relaying {args.source} on rtsp://{args.address}:{server.get_bound_port()}{args.mount}",
        flush=True,
    )
    loop.run()


if __name__ == "__main__":
    main()
