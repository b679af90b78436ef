// livefeed publish page: the browser's camera (and microphone) over WHIP (POST /PATH/whip).
// Each camera picture is drawn into a canvas with livefeed's pixel timecode on top (the
// server's clock, from Livefeed.syncClock), and the canvas is what is encoded (H.264), so a
// player measures this camera glass-to-glass like the built-in publisher. `?autostart=1`
// starts at once. State for people and tests: window.livefeedPublish.
"use strict";

const publish = { state: "idle", frames: 0, fps: null, bytesSent: 0, errors: [], session: null };
window.livefeedPublish = publish;

const path = document.body.dataset.path;
const canvas = document.getElementById("picture");
const statusLine = document.getElementById("status");
const setStatus = (state, text) => { publish.state = state; statusLine.textContent = text; };

let running = null;

async function start() {
  document.getElementById("start").disabled = true;
  try {
    await Livefeed.syncClock();
    const wantAudio = document.getElementById("audio").checked;
    const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480, frameRate: 30 }, audio: wantAudio });
    running = await publishStream(media);
    document.getElementById("stop").disabled = false;
  } catch (e) {
    publish.errors.push(String(e));
    setStatus("failed", `error: ${e}`);
    document.getElementById("start").disabled = false;
  }
}

// Draws the camera into the canvas 30 times a second, timecode on top (the time of drawing:
// the camera's picture is at most a frame older); returns the canvas's video track.
function stampedVideo(media) {
  const camera = document.createElement("video");
  camera.muted = true;
  camera.playsInline = true;
  camera.srcObject = new MediaStream(media.getVideoTracks());
  camera.play();
  const ctx = canvas.getContext("2d");
  let frame = 0, second = { start: performance.now(), frames: 0 };
  const draw = () => {
    if (!camera.videoWidth) return;
    if (camera.videoWidth && (canvas.width !== camera.videoWidth || canvas.height !== camera.videoHeight)) {
      canvas.width = camera.videoWidth;
      canvas.height = camera.videoHeight;
    }
    ctx.drawImage(camera, 0, 0, canvas.width, canvas.height);
    Livefeed.drawTimecode(ctx, canvas.width, Livefeed.serverNowMs(), frame++ & 0xffffff);
    publish.frames = frame;
    second.frames++;
    const now = performance.now();
    if (now - second.start >= 1000) {
      publish.fps = (second.frames * 1000) / (now - second.start);
      second = { start: now, frames: 0 };
    }
  };
  const timer = setInterval(draw, 1000 / 30);
  const stream = canvas.captureStream(30);
  return { track: stream.getVideoTracks()[0], stop() { clearInterval(timer); camera.srcObject = null; } };
}

// Starts publishing `media`; on failure everything it opened is closed again (the camera, the
// connection, the session if one was created) before the error goes on.
async function publishStream(media) {
  const video = stampedVideo(media);
  const pc = new RTCPeerConnection();
  try {
    return await negotiate(media, video, pc);
  } catch (e) {
    video.stop();
    media.getTracks().forEach((t) => t.stop());
    pc.close();
    if (publish.session) fetch(publish.session, { method: "DELETE" }).catch(() => {});
    publish.session = null;
    throw e;
  }
}

// H.264 in packetization-mode 1 first (livefeed serves it over RTSP and LL-HLS as it comes: no
// video transcoding), then the other H.264 entries, keeping retransmission (rtx), RED and FEC.
function h264First(codecs) {
  const kind = (c) => c.mimeType.toLowerCase();
  const h264 = codecs.filter((c) => kind(c) === "video/h264");
  const mode1 = h264.filter((c) => /packetization-mode=1/.test(c.sdpFmtpLine || ""));
  const others = h264.filter((c) => !mode1.includes(c));
  const repair = codecs.filter((c) => ["video/rtx", "video/red", "video/ulpfec"].includes(kind(c)));
  return h264.length ? [...mode1, ...others, ...repair] : [];
}

async function negotiate(media, video, pc) {
  const transceiver = pc.addTransceiver(video.track, { direction: "sendonly" });
  const preferred = h264First(RTCRtpSender.getCapabilities("video").codecs);
  if (preferred.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(preferred);
  for (const track of media.getAudioTracks()) pc.addTransceiver(track, { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc);
  setStatus("offering", "sending the offer…");
  const resp = await fetch(`/${path}/whip`, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
  if (resp.status !== 201) throw new Error(`WHIP ${resp.status}: ${(await resp.text()).trim()}`);
  publish.session = resp.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected") setStatus("publishing", `publishing to ${path}`);
    if (pc.connectionState === "failed" || pc.connectionState === "closed") setStatus("failed", `connection ${pc.connectionState}`);
  };
  let lastBytes = 0;
  const stats = setInterval(async () => {
    const report = await pc.getStats(transceiver.sender.track);
    report.forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        document.getElementById("bitrate").textContent = Math.round(((s.bytesSent - lastBytes) * 8) / 1000);
        lastBytes = s.bytesSent;
        publish.bytesSent = s.bytesSent;
        publish.codec = s.codecId ? report.get(s.codecId)?.mimeType : null;
      }
    });
    document.getElementById("frames").textContent = publish.frames;
    document.getElementById("fps").textContent = publish.fps == null ? "–" : Math.round(publish.fps);
  }, 1000);
  return {
    async stop() {
      clearInterval(stats);
      video.stop();
      media.getTracks().forEach((t) => t.stop());
      pc.close();
      if (publish.session) await fetch(publish.session, { method: "DELETE" }).catch(() => {});
      setStatus("idle", "not publishing");
    },
  };
}

// Waits until ICE gathering is complete (or 2 s): the server takes no trickled candidates.
function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 2000);
  });
}

document.getElementById("start").onclick = start;
document.getElementById("stop").onclick = async () => {
  document.getElementById("stop").disabled = true;
  if (running) await running.stop();
  running = null;
  document.getElementById("start").disabled = false;
};
if (new URLSearchParams(location.search).get("autostart")) start();
