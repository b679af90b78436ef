#!/usr/bin/python3
"""gst_camera.py: an IP camera stand-in for the pull-source tests: gst-rtsp-server serving a
live test pattern (H.264, x264 zero-latency, a keyframe a second) with an Opus tone beside it.

    gst_camera.py --port PORT [--mount /stream1] [--user U --password P]

Every client gets its own pipeline (not shared), as a camera's encoder restarts per session
here is of no matter. With --user, RTSP Basic authentication is required. It prints
"camera listening on rtsp://127.0.0.1:PORT/MOUNT" once it listens and "client connected FROM"
for each RTSP connection, flushing each line, and runs until SIGINT or SIGTERM. Needs Debian's
python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-ugly (x264enc) and -base (opusenc).
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=500 "
    "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=-1 "
    "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 ! opusenc "
    "! rtpopuspay name=pay1 pt=97 )"
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mount", default="/stream1")
    ap.add_argument("--user")
    ap.add_argument("--password", default="")
    args = ap.parse_args()

    Gst.init(None)
    for name in ("x264enc", "opusenc", "rtph264pay", "rtpopuspay", "videotestsrc"):
        if Gst.ElementFactory.find(name) is None:
            sys.exit(f"error: GStreamer element {name} not found")

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(False)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.mount, factory)

    def connected(_server, client):
        print(f"client connected {client.get_connection().get_ip()}", flush=True)

    server.connect("client-connected", connected)
    if server.attach(None) == 0:
        sys.exit(f"error: cannot listen on 127.0.0.1:{args.port}")
    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"camera listening on rtsp://127.0.0.1:{server.get_bound_port()}{args.mount}", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
