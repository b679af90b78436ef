// livefeed player page: WebRTC (WHEP) and LL-HLS (hls.js) side by side (?play=hls|webrtc for
// one), each measuring the glass-to-glass latency of every displayed frame from its pixel
// timecode (see livefeed.js) and reporting it to the server's dashboard.
"use strict";

window.livefeedStats = {};

function start() {
  const path = document.body.dataset.path;
  const only = new URLSearchParams(location.search).get("play");
  Livefeed.syncClock().catch(() => {}).finally(() => {
    for (const kind of ["webrtc", "hls"]) {
      const panel = document.getElementById(kind);
      if (only && only !== kind) { panel.hidden = true; continue; }
      const status = panel.querySelector(".status");
      const show = (cls, v) => { panel.querySelector(cls).textContent = v == null ? "–" : Math.round(v); };
      const player = Livefeed.startPlayer(kind, panel.querySelector("video"), path, {
        onStatus: (text) => { status.textContent = text; },
        onSecond: (stats) => {
          show(".latency", stats.p50);
          show(".p95", stats.p95);
          show(".fps", stats.fps);
          show(".frames", stats.frames);
          if (panel.querySelector(".jitter")) show(".jitter", stats.jitterBufferMs);
          if (panel.querySelector(".browser-latency")) show(".browser-latency", stats.browserP50);
        },
      });
      window.livefeedStats[kind] = player.stats;
    }
  });
}

start();
