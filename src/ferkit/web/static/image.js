// Upload a photo -> POST /api/predict -> the photo shown at the page's size, with numbered
// boxes drawn on a canvas over it (labels stay readable on big photos) and a panel per face.
const statusEl = document.getElementById("status");
const progress = document.getElementById("progress");
const stage = document.getElementById("stage");
const photo = document.getElementById("photo");
const overlay = document.getElementById("overlay");
const panels = document.getElementById("faces");
let shown = null;  // the reply drawn now, redrawn when the page is resized

function clear() {
  shown = null;
  stage.hidden = true;
  panels.innerHTML = "";
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  delete overlay.dataset.labels;
  if (photo.src) { URL.revokeObjectURL(photo.src); photo.removeAttribute("src"); }
}

async function predict(file) {
  clear();
  const reply = await postFile("/api/predict", "image", file, statusEl, progress);
  if (reply.stale) return;  // another photo was chosen meanwhile
  progress.hidden = true;
  if (reply.error) { setStatus(statusEl, `Error: ${reply.error}`, "error"); return; }
  setStatus(statusEl, "Drawing…", "busy");
  photo.onload = () => {
    photo.style.setProperty("--aspect", photo.naturalWidth / photo.naturalHeight);
    stage.hidden = false;
    shown = reply;
    redraw();
    const n = reply.faces.length;
    setStatus(statusEl, n ? `${n} face${n > 1 ? "s" : ""} found` : "No face found in this photo.", n ? "ok" : "info");
    panels.innerHTML = facePanels(reply.faces, "No face found: try a photo where faces are frontal and at least 40 pixels tall.");
  };
  photo.onerror = () => {  // e.g. TIFF: the server read it, the browser cannot show it
    const n = reply.faces.length;
    setStatus(statusEl, `${n} face${n === 1 ? "" : "s"} found; this browser cannot show this kind of picture (TIFF?), so the faces are listed without it.`, "info");
    panels.innerHTML = facePanels(reply.faces, "No face found in this photo.");
  };
  photo.src = URL.createObjectURL(file);
}

function redraw() {
  if (shown) drawFaces(overlay, photo, shown.faces, shown.width, shown.height);
}

window.addEventListener("resize", redraw);
dropZone(document.getElementById("form"), document.getElementById("file"), predict);
