// livefeed page library, shared by the player page and the dashboard (window.Livefeed):
// - readTimecode: the pixel timecode of a picture (capture time + frame number);
// - syncClock: the offset of the server's clock to this browser's, NTP-style over /api/v1/time;
// - watchFrames: measures every frame a <video> presents (capture → displayed);
// - SampleReporter: sends those measurements to POST /api/v1/metrics once a second;
// - playHls / playWebRtc: start a player on a <video>; both return { stop() }.
// - drawTimecode: writes a timecode into a canvas (the publish page stamps the camera's
//   pictures with it, so the players measure a browser's camera glass-to-glass).
//
// Timecode layout (see crates/livefeed-media/src/timecode.rs): 2 rows × 40 blocks across the
// top of the picture; block width B = floor(W / 40), column i spans floor(i·W/40) to
// floor((i+1)·W/40), row r spans r·B to (r+1)·B. 80 bits MSB first: 48-bit Unix ms, 24-bit frame
// number, CRC-8/AUTOSAR of the first 9 bytes. White = 1, black = 0.
"use strict";

(function (root) {
  const COLUMNS = 40;
  const ROWS = 2;

  function crc8Autosar(bytes) {
    let crc = 0xff;
    for (const b of bytes) {
      crc ^= b;
      for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x2f) & 0xff : (crc << 1) & 0xff;
    }
    return crc ^ 0xff;
  }

  // Reads the timecode from RGBA pixels of the top strip (width × height); null if absent/invalid.
  function readTimecode(rgba, width, height) {
    const block = Math.floor(width / COLUMNS);
    if (block < 2 || height < ROWS * block) return null;
    const means = [];
    for (let r = 0; r < ROWS; r++) {
      for (let c = 0; c < COLUMNS; c++) {
        const x0 = Math.floor((c * width) / COLUMNS), x1 = Math.floor(((c + 1) * width) / COLUMNS);
        const y0 = r * block, y1 = (r + 1) * block;
        const tx = Math.floor((x1 - x0) / 4), ty = Math.floor((y1 - y0) / 4);
        let sum = 0, n = 0;
        for (let y = y0 + ty; y < y1 - ty; y++) {
          for (let x = x0 + tx; x < x1 - tx; x++) {
            const i = (y * width + x) * 4;
            sum += 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
            n++;
          }
        }
        means.push(n ? sum / n : 0);
      }
    }
    const lo = Math.min(...means), hi = Math.max(...means);
    if (hi - lo < 64) return null;
    const third = (hi - lo) / 3;
    if (means.some((m) => m > lo + third && m < hi - third)) return null;
    const mid = (lo + hi) / 2;
    const bytes = new Uint8Array(10);
    means.forEach((m, k) => { if (m > mid) bytes[k >> 3] |= 0x80 >> (k & 7); });
    if (crc8Autosar(bytes.subarray(0, 9)) !== bytes[9]) return null;
    let unixMs = 0;
    for (let i = 0; i < 6; i++) unixMs = unixMs * 256 + bytes[i];
    const frame = (bytes[6] << 16) | (bytes[7] << 8) | bytes[8];
    return { unixMs, frame };
  }

  // Draws the timecode of (unixMs, frame) across the top of a 2D canvas context `ctx` whose
  // canvas is `width` pixels wide: the exact inverse of readTimecode.
  function drawTimecode(ctx, width, unixMs, frame) {
    const bytes = new Uint8Array(10);
    let ms = Math.floor(unixMs);
    for (let i = 5; i >= 0; i--) { bytes[i] = ms % 256; ms = Math.floor(ms / 256); }
    bytes[6] = (frame >> 16) & 0xff; bytes[7] = (frame >> 8) & 0xff; bytes[8] = frame & 0xff;
    bytes[9] = crc8Autosar(bytes.subarray(0, 9));
    const block = Math.floor(width / COLUMNS);
    for (let k = 0; k < ROWS * COLUMNS; k++) {
      const r = Math.floor(k / COLUMNS), c = k % COLUMNS;
      const x0 = Math.floor((c * width) / COLUMNS), x1 = Math.floor(((c + 1) * width) / COLUMNS);
      const bit = (bytes[k >> 3] >> (7 - (k & 7))) & 1;
      ctx.fillStyle = bit ? "rgb(235,235,235)" : "rgb(16,16,16)";
      ctx.fillRect(x0, r * block, x1 - x0, block);
    }
  }

  function percentile(sorted, p) {
    if (!sorted.length) return null;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  }

  // This browser's clock as the page sees it; `?clock_shift_ms=N` pretends it is N ms off (to
  // check the offset correction).
  const clockShiftMs = typeof location !== "undefined" ? Number(new URLSearchParams(location.search).get("clock_shift_ms")) || 0 : 0;
  const localNowMs = () => performance.timeOrigin + performance.now() + clockShiftMs;

  // The server's clock minus ours: { offsetMs, uncertaintyMs } from the exchange with the
  // shortest round trip of `rounds`. Shared by every player of the page (window.livefeedClock).
  const clock = { offsetMs: 0, uncertaintyMs: null, shiftMs: clockShiftMs, synced: false };
  async function syncClock(rounds = 8) {
    let best = null;
    for (let i = 0; i < rounds; i++) {
      const sent = localNowMs();
      const resp = await fetch("/api/v1/time", { cache: "no-store" });
      const body = await resp.json();
      const received = localNowMs();
      const rtt = received - sent;
      if (rtt < 0) continue;
      const offset = body.unix_ns / 1e6 - (sent + rtt / 2);
      if (!best || rtt < best.rtt) best = { rtt, offset };
    }
    if (best) Object.assign(clock, { offsetMs: best.offset, uncertaintyMs: best.rtt / 2, synced: true });
    return clock;
  }
  // Server time now (ms) as this page estimates it.
  const serverNowMs = () => localNowMs() + clock.offsetMs;

  // Sends capture→displayed samples of one player to the server once a second.
  class SampleReporter {
    constructor(path, client) {
      this.path = path;
      this.client = client;
      this.queue = [];
      this.sent = 0;
      this.timer = setInterval(() => this.flush(), 1000);
    }
    add(unixMs, latencyMs) {
      if (this.queue.length < 2000) this.queue.push({ path: this.path, stage: "capture_to_displayed", client: this.client, unix_ms: Math.round(unixMs), latency_ms: latencyMs });
    }
    async flush() {
      if (!this.queue.length || !clock.synced) return;
      const samples = this.queue.splice(0);
      try {
        const resp = await fetch("/api/v1/metrics", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ samples }) });
        if (resp.ok) this.sent += samples.length;
      } catch (_) { /* the next batch will try again */ }
    }
    stop() { clearInterval(this.timer); this.flush(); }
  }

  // What a player measured; read by people (the panels) and by the browser tests.
  function newStats() {
    return { frames: 0, measured: 0, latencies: [], lastLatency: null, p50: null, p95: null, fps: null, jitterBufferMs: null, errors: [],
      // The browser's own figure, where it knows a frame's capture time (WebRTC with
      // abs-capture-time and sender reports): displayed minus captureTime, for the same frames
      // as `pairedLatencies` (the pixel-timecode figure of each).
      browserLatencies: [], pairedLatencies: [], browserP50: null };
  }

  // Measures every frame `video` presents into `stats` (p50/p95/fps over the last second,
  // refreshed once a second, then `onSecond(stats)`); samples go to `reporter` if given.
  function watchFrames(video, stats, { reporter, onSecond } = {}) {
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const recent = [], recentBrowser = [];
    let active = true;
    const onFrame = (_now, meta) => {
      if (!active) return;
      stats.frames++;
      stats.lastFrameAt = Date.now();
      const w = video.videoWidth, h = Math.min(video.videoHeight, ROWS * Math.floor(video.videoWidth / COLUMNS));
      if (w && h) {
        if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
        ctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
        const tc = readTimecode(ctx.getImageData(0, 0, w, h).data, w, h);
        if (tc) {
          // When the frame is shown, on the server's clock, minus when it was captured.
          const shownAt = meta.expectedDisplayTime || performance.now();
          const shownMs = performance.timeOrigin + shownAt + clockShiftMs + clock.offsetMs;
          const latency = shownMs - tc.unixMs;
          // The browser's own view: its captureTime is on this page's clock already.
          if (meta.captureTime > 0) {
            const browserLatency = shownAt - meta.captureTime;
            stats.browserLatencies.push(browserLatency);
            stats.pairedLatencies.push(latency);
            if (stats.browserLatencies.length > 7200) { stats.browserLatencies.shift(); stats.pairedLatencies.shift(); }
            recentBrowser.push({ t: performance.now(), latency: browserLatency });
          }
          stats.measured++;
          stats.lastLatency = latency;
          stats.latencies.push(latency);
          if (stats.latencies.length > 7200) stats.latencies.shift();
          recent.push({ t: performance.now(), latency });
          if (reporter) reporter.add(shownMs, latency);
        }
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    const timer = setInterval(() => {
      const now = performance.now();
      while (recent.length && now - recent[0].t > 1000) recent.shift();
      while (recentBrowser.length && now - recentBrowser[0].t > 1000) recentBrowser.shift();
      stats.browserP50 = percentile(recentBrowser.map((r) => r.latency).sort((a, b) => a - b), 50);
      const sorted = recent.map((r) => r.latency).sort((a, b) => a - b);
      stats.p50 = percentile(sorted, 50);
      stats.p95 = percentile(sorted, 95);
      stats.fps = recent.length;
      if (onSecond) onSecond(stats);
    }, 1000);
    return { stop() { active = false; clearInterval(timer); } };
  }

  // LL-HLS with hls.js in low-latency mode (Safari plays it natively). `viewer` identifies this
  // player to the server's viewer count.
  function playHls(video, path, stats, onStatus) {
    const viewer = Math.random().toString(36).slice(2, 12);
    const url = `/${path}/index.m3u8?viewer=${viewer}`;
    const timers = [];
    let hls = null;
    video.addEventListener("playing", () => onStatus(`playing /${path}/index.m3u8`));
    if (root.Hls && Hls.isSupported()) {
      hls = new Hls({
        lowLatencyMode: true,
        backBufferLength: 4,
        // Catch up with the live edge by playing faster, and do not step back from the edge
        // after a stall (hls.js's default adds a full second each time).
        maxLiveSyncPlaybackRate: 1.5,
        liveSyncOnStallIncrease: 0,
      });
      hls.on(Hls.Events.ERROR, (_e, data) => {
        stats.errors.push(`${data.type}: ${data.details}`);
        if (data.fatal) onStatus(`error: ${data.details}`);
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      // hls.js speeds up only with more than a second buffered, which 100 ms parts never give:
      // a viewer more than half a part behind its target (a start at an old keyframe, a stall,
      // a start a part late) jumps to the live-sync position when that is already buffered.
      timers.push(setInterval(() => {
        const sync = hls.liveSyncPosition, buffered = video.buffered;
        const slack = (hls.latestLevelDetails?.partTarget || 0.1) / 2;
        if (sync && hls.latency > hls.targetLatency + slack && buffered.length && sync <= buffered.end(buffered.length - 1)) {
          video.currentTime = sync;
          stats.liveSyncJumps = (stats.liveSyncJumps || 0) + 1;
        }
        // hls.js's own view, for diagnosis: its latency estimate, its target and the rate.
        stats.hlsLatencyMs = hls.latency * 1000;
        stats.hlsTargetLatencyMs = hls.targetLatency * 1000;
        stats.playbackRate = video.playbackRate;
      }, 500));
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
    } else {
      onStatus("this browser cannot play HLS");
      return { stop() {} };
    }
    video.play().catch(() => onStatus("press play"));
    return {
      stop() {
        timers.forEach(clearInterval);
        if (hls) hls.destroy();
        video.removeAttribute("src");
        video.load();
      },
    };
  }

  // Offers the abs-capture-time RTP header extension (Chromium has it, off by default): the
  // server then sends every frame's capture time, and the browser's own captureTime
  // (requestVideoFrameCallback) and getSynchronizationSources() report it.
  const ABS_CAPTURE_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
  function askForCaptureTime(transceiver) {
    if (!transceiver.getHeaderExtensionsToNegotiate) return;
    const wanted = transceiver.getHeaderExtensionsToNegotiate().map((e) =>
      e.uri === ABS_CAPTURE_TIME ? { uri: e.uri, direction: "sendrecv" } : e);
    try { transceiver.setHeaderExtensionsToNegotiate(wanted); } catch (_) { /* offered without it */ }
  }

  // Chromium estimates when a received frame was captured (its requestVideoFrameCallback
  // `captureTime`) from the sender reports only once it knows the round-trip time, which a
  // receive-only peer learns from RTCP XR (RFC 3611: it sends receiver reference times, the
  // server answers with their delay), and it sends those only for codecs with the `rrtr`
  // feedback, which it does not offer by default: add it to every video codec of the offer.
  function withRtt(offer) {
    const sdp = offer.sdp.replace(/^a=rtpmap:(\d+) (H264|H265|VP8|VP9|AV1)\/90000\r\n/gm,
      (line, pt) => `${line}a=rtcp-fb:${pt} rrtr\r\n`);
    return { type: offer.type, sdp };
  }

  // The STUN/TURN servers the server announces for `path` (RFC 9725: Link headers of an
  // OPTIONS request to the WHEP endpoint), as RTCIceServer entries; none if it announces none.
  async function whepIceServers(path) {
    try {
      const resp = await fetch(`/${path}/whep`, { method: "OPTIONS" });
      return parseIceServerLinks(resp.headers.get("Link") || "");
    } catch (_) {
      return [];
    }
  }
  function parseIceServerLinks(header) {
    const servers = [];
    for (const m of header.matchAll(/<([^>]+)>((?:\s*;\s*[\w-]+="[^"]*")*)/g)) {
      const params = Object.fromEntries([...m[2].matchAll(/([\w-]+)="([^"]*)"/g)].map((p) => [p[1], p[2]]));
      if (params.rel !== "ice-server") continue;
      const server = { urls: m[1] };
      if (params.username !== undefined) Object.assign(server, { username: params.username, credential: params.credential });
      servers.push(server);
    }
    return servers;
  }

  // WHEP: POST our offer (all candidates gathered, no trickle), apply the answer, DELETE on stop.
  async function playWebRtc(video, path, stats, onStatus) {
    const iceServers = await whepIceServers(path);
    // `?ice-transport-policy=relay` on the page: through the TURN servers only (to check them).
    const policy = typeof location !== "undefined" && new URLSearchParams(location.search).get("ice-transport-policy");
    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: policy === "relay" ? "relay" : "all" });
    const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
    // Sound, when the path has a track the server sends over WebRTC (Opus).
    const audio = pc.addTransceiver("audio", { direction: "recvonly" });
    askForCaptureTime(transceiver);
    let session = null, timer = null;
    const stop = () => {
      clearInterval(timer);
      video.srcObject = null;
      // DELETE first: closing the connection first makes the server end the session itself,
      // and the DELETE would then find nothing.
      const ended = session ? fetch(session, { method: "DELETE", keepalive: true }).catch(() => {}) : Promise.resolve();
      session = null;
      ended.finally(() => pc.close());
    };
    pc.ontrack = (e) => {
      // The lowest jitter-buffer target the browser allows.
      if ("jitterBufferTarget" in e.receiver) e.receiver.jitterBufferTarget = 0;
      if ("playoutDelayHint" in e.receiver) e.receiver.playoutDelayHint = 0;
      // Video and audio play together in one stream, whatever stream ids the answer gave them.
      if (!video.srcObject) video.srcObject = new MediaStream();
      video.srcObject.addTrack(e.track);
    };
    pc.onconnectionstatechange = () => onStatus(`WebRTC ${pc.connectionState}`);
    await pc.setLocalDescription(withRtt(await pc.createOffer()));
    await new Promise((done) => {
      if (pc.iceGatheringState === "complete") return done();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
      setTimeout(done, 2000);
    });
    const resp = await fetch(`/${path}/whep`, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
    if (resp.status !== 201) {
      const reason = `WHEP refused: ${resp.status} ${await resp.text()}`;
      onStatus(reason);
      stats.errors.push(reason);
      pc.close();
      return { stop() {} };
    }
    session = resp.headers.get("Location");
    const answer = await resp.text();
    stats.absCaptureTime = { offered: pc.localDescription.sdp.includes(ABS_CAPTURE_TIME), answered: answer.includes(ABS_CAPTURE_TIME) };
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    root.addEventListener("pagehide", stop);
    video.play().catch(() => onStatus("press play"));
    let last = null;
    timer = setInterval(async () => {
      const report = await transceiver.receiver.getStats();
      report.forEach((r) => {
        // How the media gets here: the local end of the selected candidate pair (host, srflx,
        // prflx, or relay through a TURN server; over udp or tcp).
        if (r.type === "transport" && r.selectedCandidatePairId) {
          const pair = report.get(r.selectedCandidatePairId);
          const local = pair && report.get(pair.localCandidateId);
          if (local) Object.assign(stats, { iceCandidateType: local.candidateType, iceProtocol: local.protocol });
        }
        // The server's sender reports, and the round trips measured through RTCP XR.
        if (r.type === "remote-outbound-rtp" && r.kind === "video") stats.senderReports = { reportsSent: r.reportsSent, roundTripTimeMeasurements: r.roundTripTimeMeasurements };
        if (r.type !== "inbound-rtp" || r.kind !== "video") return;
        if (last && r.jitterBufferEmittedCount > last.jitterBufferEmittedCount) {
          stats.jitterBufferMs = (1000 * (r.jitterBufferDelay - last.jitterBufferDelay)) / (r.jitterBufferEmittedCount - last.jitterBufferEmittedCount);
        }
        stats.framesDropped = r.framesDropped;
        stats.nackCount = r.nackCount;
        last = r;
      });
      // What any player can read: the capture time of the last frame received (abs-capture-time).
      const source = transceiver.receiver.getSynchronizationSources()[0];
      if (source) stats.syncSource = { captureTimestamp: source.captureTimestamp ?? null, senderCaptureTimeOffset: source.senderCaptureTimeOffset ?? null, timestamp: source.timestamp };
      const sound = await audio.receiver.getStats();
      sound.forEach((r) => {
        if (r.type !== "inbound-rtp" || r.kind !== "audio") return;
        stats.audioPacketsReceived = r.packetsReceived;
        stats.audioEnergy = r.totalAudioEnergy ?? null;
        stats.audioCodec = sound.get(r.codecId)?.mimeType ?? null;
      });
    }, 1000);
    return { stop };
  }

  // Starts player `kind` ("webrtc" | "hls") of `path` on `video`: measures its frames, reports
  // them to the server as client kind browser-KIND. Returns { stats, stop() }.
  function startPlayer(kind, video, path, { onStatus = () => {}, onSecond } = {}) {
    const stats = newStats();
    const reporter = new SampleReporter(path, `browser-${kind}`);
    const watcher = watchFrames(video, stats, { reporter, onSecond });
    const play = kind === "hls" ? playHls : playWebRtc;
    let player = null, stopped = false;
    Promise.resolve(play(video, path, stats, onStatus)).then((p) => {
      player = p;
      if (stopped) p.stop();
    }).catch((e) => {
      stats.errors.push(String(e));
      onStatus(`error: ${e}`);
    });
    return {
      stats,
      reporter,
      stop() {
        stopped = true;
        watcher.stop();
        reporter.stop();
        if (player) player.stop();
      },
    };
  }

  const api = { readTimecode, drawTimecode, crc8Autosar, percentile, syncClock, clock, serverNowMs, startPlayer, parseIceServerLinks };
  root.Livefeed = api;
  root.livefeedClock = clock;
  if (typeof module !== "undefined") module.exports = api;
})(typeof window !== "undefined" ? window : globalThis);
