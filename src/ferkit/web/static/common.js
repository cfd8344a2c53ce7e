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
// the photo's resolution, and stay inside the canvas. The label boxes are kept in
// canvas.dataset.labels (CSS pixels) for the tests.
function drawFaces(canvas, under, faces, width, height) {
  const w = under.clientWidth, h = under.clientHeight, dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
  canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const sx = w / width, sy = h / height, labels = [];
  ctx.font = `600 ${LABEL_PX}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  faces.forEach((f, i) => {
    const [x, y, bw, bh] = [f.box[0] * sx, f.box[1] * sy, f.box[2] * sx, f.box[3] * sy];
    const color = COLORS[f.emotion] || "#fff";
    ctx.lineWidth = 3;
    ctx.strokeStyle = color;
    ctx.strokeRect(x, y, bw, bh);
    // The whole label, else only the face's number (its panel below has the rest), at the
    // first place that fits the picture and covers no label drawn before: above the box,
    // below it, a row further out, inside its top (faces side by side on a narrow screen).
    const th = LABEL_PX + 8, number = `#${faceNumber(f, i)}`;
    const places = [0, 1, 2, 3].flatMap(k => [y - th * (k + 1), y + bh + th * k]).concat([y])
      .filter(ly => ly >= 0 && ly + th <= h);
    const label = text => {
      const tw = Math.ceil(ctx.measureText(text).width) + 10;
      const lx = Math.max(0, Math.min(x, w - tw));  // never cut at the right edge
      const free = ly => !labels.some(o => lx < o.x + o.w && o.x < lx + tw && ly < o.y + o.h && o.y < ly + th);
      const ly = places.find(free);
      return ly === undefined ? null : { text, lx, ly, tw };
    };
    const fallback = { text: number, lx: Math.max(0, x), ly: places[0] ?? Math.max(0, h - th) };
    const { text, lx, ly, tw = Math.ceil(ctx.measureText(number).width) + 10 } =
      label(`${number} ${f.emotion} ${percent(f.scores[f.emotion])}`) ?? label(number) ?? fallback;
    ctx.fillStyle = color;
    ctx.fillRect(lx, ly, tw, th);
    ctx.fillStyle = "#000";
    ctx.fillText(text, lx + 5, ly + th / 2);
    labels.push({ text, x: lx, y: ly, w: tw, h: th });
  });
  canvas.dataset.labels = JSON.stringify({ width: w, height: h, labels });
}

// One panel per face, numbered like its box, with a labelled bar per emotion.
function facePanels(faces, emptyText) {
  if (!faces.length) return `<p class="empty">${emptyText}</p>`;
  return faces.map((f, i) =>
    `<div class="face-scores face" style="--color:${COLORS[f.emotion]}">` +
    `<strong>#${faceNumber(f, i)} ${f.emotion} ${percent(f.scores[f.emotion])}</strong>` +
    Object.entries(f.scores).map(([name, p]) =>
      `<div class="score"><span>${name}</span><span class="track"><span class="fill" ` +
      `style="width:${(p * 100).toFixed(1)}%;background:${COLORS[name]}"></span></span>` +
      `<span class="pct">${percent(p)}</span></div>`).join("") +
    "</div>").join("");
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
