// Webcam -> downscaled JPEG over a WebSocket (one frame in flight) -> boxes on a canvas.
const video = document.getElementById("video");
const overlay = document.getElementById("overlay");
const statusEl = document.getElementById("status");
const MAX_SIDE = 480, MIN_INTERVAL_MS = 66;
const grab = document.createElement("canvas");
let ws, sentAt = 0, frames = 0, lastFps = performance.now();

async function start() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    statusEl.textContent = "This browser cannot open a camera (it needs HTTPS or localhost).";
    return;
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    statusEl.textContent = err.name === "NotAllowedError"
      ? "Camera access was denied: allow it in the browser to see live predictions."
      : `No camera available (${err.name}).`;
    return;
  }
  await video.play();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/ws/live`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { statusEl.textContent = "Live"; send(); };
  ws.onclose = () => { statusEl.textContent = "Disconnected from the server."; };
  ws.onmessage = (event) => {
    const reply = JSON.parse(event.data);
    document.getElementById("rtt").textContent = Math.round(performance.now() - sentAt);
    if (reply.error) statusEl.textContent = reply.error; else show(reply);
    frames += 1;
    const now = performance.now();
    if (now - lastFps > 1000) {
      document.getElementById("fps").textContent = (frames * 1000 / (now - lastFps)).toFixed(1);
      frames = 0; lastFps = now;
    }
    setTimeout(send, Math.max(0, MIN_INTERVAL_MS - (performance.now() - sentAt)));
  };
}

function send() {
  if (!ws || ws.readyState !== WebSocket.OPEN || !video.videoWidth) { setTimeout(send, 100); return; }
  const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  grab.width = Math.round(video.videoWidth * scale);
  grab.height = Math.round(video.videoHeight * scale);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  grab.toBlob(blob => blob.arrayBuffer().then(buf => { sentAt = performance.now(); ws.send(buf); }),
    "image/jpeg", 0.8);
}

function show(reply) {
  overlay.width = video.clientWidth; overlay.height = video.clientHeight;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  drawFaces(ctx, reply.faces, overlay.width / reply.width, overlay.height / reply.height);
  document.getElementById("scores").innerHTML = reply.faces.map((f, i) =>
    `<div class="face-scores"><strong>face ${i + 1}: ${f.emotion}</strong>` +
    Object.entries(f.scores).map(([n, p]) =>
      `<div>${n} <span class="bar" style="width:${Math.round(p * 120)}px"></span> ${(p * 100).toFixed(0)}%</div>`
    ).join("") + "</div>").join("");
}

start();
