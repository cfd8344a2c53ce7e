// Webcam -> downscaled JPEG over a WebSocket (one frame in flight) -> numbered boxes on a
// canvas over the video and a panel per face. A lost server is retried with a growing wait.
const video = document.getElementById("video");
const overlay = document.getElementById("overlay");
const statusEl = document.getElementById("status");
const help = document.getElementById("help");
const stage = document.getElementById("stage");
const stats = document.getElementById("stats");
const panels = document.getElementById("faces");
const MAX_SIDE = 480, MIN_INTERVAL_MS = 66, RETRY_MS = [1000, 2000, 4000, 8000, 15000];
const grab = document.createElement("canvas");
let ws, sentAt = 0, frames = 0, lastFps = performance.now(), failures = 0, refusal = "";

async function start() {
  help.hidden = true;
  setStatus(statusEl, "Starting the camera…", "busy");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return stuck("This browser cannot open a camera here (it needs HTTPS or localhost).");
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (err) {
    return stuck(err.name === "NotAllowedError"
      ? "Camera access was denied: allow it for this site in the browser (the camera icon in the address bar), then try again."
      : `No camera could be opened (${err.name}): plug one in or close the app using it, then try again.`);
  }
  await video.play();
  stage.hidden = false;
  connect();
}

// No camera: say why and offer a way forward.
function stuck(text) {
  setStatus(statusEl, text, "error");
  help.hidden = false;
  stage.hidden = true;
  stats.hidden = true;
}

function capitalise(text) { return text.charAt(0).toUpperCase() + text.slice(1); }

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/ws/live`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { refusal = ""; setStatus(statusEl, "Live", "ok"); stats.hidden = false; send(); };
  ws.onclose = (event) => {
    clearFaces();  // never leave the last box frozen on a live picture
    stats.hidden = true;
    const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
    failures += 1;
    const why = event.code === 1013  // refused: its reason came as an error reply first
      ? capitalise(refusal || "the server is busy (too many live viewers)")
      : "Lost the connection to the server";
    setStatus(statusEl, `${why}; reconnecting in ${wait / 1000} s…`, "error");
    setTimeout(connect, wait);
  };
  ws.onmessage = (event) => {
    const reply = JSON.parse(event.data);
    document.getElementById("rtt").textContent = Math.round(performance.now() - sentAt);
    if (reply.error) { refusal = reply.error; setStatus(statusEl, `Error: ${reply.error}`, "error"); }
    else { failures = 0; if (statusEl.textContent !== "Live") setStatus(statusEl, "Live", "ok"); show(reply); }
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
  if (!ws || ws.readyState !== WebSocket.OPEN) return;  // onopen sends again
  if (!video.videoWidth) { setTimeout(send, 100); return; }
  const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  grab.width = Math.round(video.videoWidth * scale);
  grab.height = Math.round(video.videoHeight * scale);
  grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
  grab.toBlob(blob => blob.arrayBuffer().then(buf => {
    if (ws.readyState !== WebSocket.OPEN) return;
    sentAt = performance.now();
    ws.send(buf);
  }), "image/jpeg", 0.8);
}

function clearFaces() {
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  overlay.dataset.labels = JSON.stringify({ labels: [] });
  panels.innerHTML = "";
}

function show(reply) {
  drawFaces(overlay, video, reply.faces, reply.width, reply.height);
  panels.innerHTML = facePanels(reply.faces, "No face in view.");
}

document.getElementById("retry").addEventListener("click", start);
start();
