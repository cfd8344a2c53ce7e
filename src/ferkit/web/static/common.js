// Shared by the pages: status messages, drawing numbered faces on a canvas laid over an
// image or video, score panels, and uploads checked for size and sent with progress.
// The emotion colours come from the server (ferkit.labels.COLORS), so boxes, panels and
// the video chart agree.
const COLORS = JSON.parse(document.body.dataset.colors);
const LABEL_PX = 14;

// kind: "busy", "ok", "info", "error" or "" (styled by app.css)
function setStatus(el, text, kind = "") {
  el.textContent = text;
  el.className = `status ${kind}`.trim();
}

const faceNumber = (f, i) => f.face_id ?? i + 1;
const percent = p => `${Math.round(p * 100)}%`;

// Size the canvas to the element it covers (CSS pixels, sharp on high-DPI screens) and draw
// every face scaled from the analysed image's size: labels keep one readable size whatever
// the photo's resolution, stay inside the canvas and never cover a face. Up to CROWDED faces,
// each whole label goes above or below its box; in a crowded picture (more faces, or a label
// with no such place) the boxes carry only their numbers and the panels (facePanels) say the
// rest. A doubtful face (the detector unsure) has a dashed box and a "?". The label and face
// boxes are kept in canvas.dataset.labels (CSS pixels) for the tests.
const CROWDED = 4;

function drawFaces(canvas, under, faces, width, height) {
  const w = under.clientWidth, h = under.clientHeight, dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const sx = w / width, sy = h / height, th = LABEL_PX + 8;
  ctx.font = `600 ${LABEL_PX}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  const boxes = faces.map(f => ({ x: f.box[0] * sx, y: f.box[1] * sy, w: f.box[2] * sx, h: f.box[3] * sy }));
  const cut = (a, b) => Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x)) *
    Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));
  const inside = r => r.x >= 0 && r.y >= 0 && r.x + r.w <= w + 0.5 && r.y + r.h <= h + 0.5;
  const tag = (text, x, y) => ({ text, x, y, w: Math.ceil(ctx.measureText(text).width) + 10, h: th });
  const doubt = f => (f.doubtful ? "?" : "");
  // Whole labels, above or below each box, covering no face and no label: null if one fails.
  const beside = () => {
    const labels = [];
    for (const [i, f] of faces.entries()) {
      const b = boxes[i], text = `#${faceNumber(f, i)} ${f.emotion} ${percent(f.scores[f.emotion])}${doubt(f)}`;
      const tw = tag(text, 0, 0).w, lx = Math.max(0, Math.min(b.x, w - tw));
      const label = [b.y - th, b.y + b.h].map(ly => tag(text, lx, ly)).find(r => inside(r) &&
        !boxes.some(o => cut(r, o) > 0) && !labels.some(o => cut(r, o) > 0));
      if (!label) return null;
      labels.push(label);
    }
    return labels;
  };
  // Numbers only, each at the place around its box covering the least face, then label.
  const numbers = () => {
    const labels = [];
    faces.forEach((f, i) => {
      const b = boxes[i], text = `#${faceNumber(f, i)}${doubt(f)}`, tw = tag(text, 0, 0).w;
      const clamp = x => Math.max(0, Math.min(x, w - tw)), mid = b.x + (b.w - tw) / 2;
      const xs = [mid, b.x, b.x + b.w - tw].map(clamp);
      const spots = [b.y - th, b.y + b.h].flatMap(y => xs.map(x => [x, y]))
        .concat([[b.x - tw, b.y + (b.h - th) / 2], [b.x + b.w, b.y + (b.h - th) / 2],
          [clamp(mid), b.y - 2 * th], [clamp(mid), b.y + b.h + th]])
        .map(([x, y]) => tag(text, x, y)).filter(inside);
      if (!spots.length) spots.push(tag(text, clamp(b.x), Math.max(0, Math.min(b.y, h - th))));
      const cost = r => [boxes.reduce((sum, o) => sum + cut(r, o), 0), labels.reduce((sum, o) => sum + cut(r, o), 0)];
      const best = spots.reduce((a, r) => {
        const [ca, la] = cost(a), [cr, lr] = cost(r);
        return cr < ca || (cr === ca && lr < la) ? r : a;
      });
      labels.push(best);
    });
    return labels;
  };
  const whole = faces.length <= CROWDED ? beside() : null;
  const labels = whole ?? numbers();
  faces.forEach((f, i) => {
    const b = boxes[i], color = COLORS[f.emotion] || "#fff", label = labels[i];
    ctx.lineWidth = 3;
    ctx.strokeStyle = color;
    ctx.setLineDash(f.doubtful ? [7, 5] : []);
    ctx.strokeRect(b.x, b.y, b.w, b.h);
    ctx.fillStyle = color;
    ctx.fillRect(label.x, label.y, label.w, label.h);
    ctx.fillStyle = "#000";
    ctx.fillText(label.text, label.x + 5, label.y + th / 2);
  });
  ctx.setLineDash([]);
  canvas.dataset.labels = JSON.stringify({ width: w, height: h, labels, faces: boxes, listed: !whole });
}

// One panel per face in number order, numbered like its box: its label, how sure the
// detector is that it is a face ("doubtful" when unsure), and a labelled bar per emotion;
// beyond CROWDED faces a compact row each (one bar split by emotion, the top three named),
// so a group photo's list stays a screen or two long.
function facePanels(faces, emptyText) {
  if (!faces.length) return `<p class="empty">${emptyText}</p>`;
  const numbered = faces.map((f, i) => [faceNumber(f, i), f]).sort((a, b) => a[0] - b[0]);
  const compact = faces.length > CROWDED;
  const detected = f => f.detection === undefined ? "" : `<span class="detection">` +
    `${f.doubtful ? "doubtful face · " : ""}detected ${(Math.floor(f.detection * 100) / 100).toFixed(2)}</span>`;
  const bars = f => Object.entries(f.scores).map(([name, p]) =>
    `<div class="score"><span>${name}</span><span class="track"><span class="fill" ` +
    `style="width:${(p * 100).toFixed(1)}%;background:${COLORS[name]}"></span></span>` +
    `<span class="pct">${percent(p)}</span></div>`).join("");
  const stack = f => `<span class="stack">` + Object.entries(f.scores).map(([name, p]) =>
    `<span title="${name} ${percent(p)}" style="width:${(p * 100).toFixed(1)}%;background:${COLORS[name]}"></span>`).join("") +
    `</span><span class="top">` + Object.entries(f.scores).sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([name, p]) => `${name} ${percent(p)}`).join(" · ") + "</span>";
  return numbered.map(([n, f]) =>
    `<div class="face-scores face${f.doubtful ? " doubtful" : ""}${compact ? " compact" : ""}" data-face="${n}" style="--color:${COLORS[f.emotion]}">` +
    `<strong>#${n} ${f.emotion} ${percent(f.scores[f.emotion])}${f.doubtful ? "?" : ""}</strong>${detected(f)}` +
    (compact ? stack(f) : bars(f)) + "</div>").join("");
}

// A file chosen with the form's picker or dropped anywhere on the page (a drop outside the
// box would otherwise make the browser open the file and leave the app).
function dropZone(form, input, onFile) {
  input.addEventListener("change", () => { if (input.files[0]) onFile(input.files[0]); input.value = ""; });
  window.addEventListener("dragover", e => { e.preventDefault(); form.classList.add("over"); });
  window.addEventListener("dragleave", e => { if (!e.relatedTarget) form.classList.remove("over"); });
  window.addEventListener("drop", e => {
    e.preventDefault(); form.classList.remove("over");
    if (e.dataTransfer.files[0]) onFile(e.dataTransfer.files[0]);
  });
}

const megabytes = n => `${(n / 1048576).toFixed(n < 10485760 ? 1 : 0)} MB`;

let uploads = 0;  // uploads started on this page: only the newest one's reply is shown

// POST one file as a multipart field, its size checked first against the server's limit
// and the upload's progress shown; resolves to the JSON reply, or {error} when it failed.
// A reply that a newer upload overtook has `stale: true` (the page shows the file chosen
// last, not the one whose reply came last).
function postFile(url, field, file, statusEl, progressEl) {
  const mine = ++uploads;
  const limit = Number(document.getElementById("form").dataset.maxBytes);
  if (file.size > limit) {
    return Promise.resolve({ error: `${file.name} is ${megabytes(file.size)}; the limit is ${megabytes(limit)}` });
  }
  return new Promise(resolve => {
    const xhr = new XMLHttpRequest();
    const body = new FormData();
    body.append(field, file);
    xhr.open("POST", url);
    xhr.responseType = "json";
    progressEl.hidden = false;
    progressEl.value = 0;
    setStatus(statusEl, `Uploading ${file.name}… 0%`, "busy");
    xhr.upload.onprogress = e => {
      if (!e.lengthComputable || mine !== uploads) return;
      progressEl.value = e.loaded / e.total;
      setStatus(statusEl, `Uploading ${file.name}… ${percent(e.loaded / e.total)}`, "busy");
    };
    xhr.upload.onload = () => {
      if (mine === uploads) setStatus(statusEl, `${file.name} sent; the server is reading it…`, "busy");
    };
    const settle = reply => resolve(mine === uploads ? reply : { ...reply, stale: true });
    xhr.onload = () => settle(xhr.response && typeof xhr.response === "object"
      ? xhr.response : { error: `the server answered ${xhr.status} ${xhr.statusText}` });
    xhr.onerror = () => settle({ error: "could not reach the server (is it running?)" });
    xhr.send(body);
  });
}
