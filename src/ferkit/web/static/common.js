// Shared by the pages: colours per emotion and drawing results on a canvas.
const COLORS = { angry: "#dc2828", disgust: "#288c28", fear: "#a03ca0", happy: "#f0c828",
  sad: "#2878c8", surprise: "#28c8e6", neutral: "#b4b4b4" };

function drawFaces(ctx, faces, sx, sy) {
  ctx.lineWidth = 3;
  ctx.font = "16px system-ui, sans-serif";
  for (const f of faces) {
    const [x, y, w, h] = f.box;
    const color = COLORS[f.emotion] || "#fff";
    const label = `${f.emotion} ${Math.round(f.scores[f.emotion] * 100)}%`;
    ctx.strokeStyle = color;
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    const tw = ctx.measureText(label).width + 8;
    ctx.fillStyle = color;
    ctx.fillRect(x * sx, Math.max(0, y * sy - 22), tw, 22);
    ctx.fillStyle = "#000";
    ctx.fillText(label, x * sx + 4, Math.max(16, y * sy - 6));
  }
}

function scoreTable(faces) {
  if (!faces.length) return "<tr><td>No face found.</td></tr>";
  const names = Object.keys(faces[0].scores);
  let html = "<tr><th>face</th><th>emotion</th>" + names.map(n => `<th>${n}</th>`).join("") + "</tr>";
  faces.forEach((f, i) => {
    html += `<tr class="face"><td>${i + 1}</td><td>${f.emotion}</td>` +
      names.map(n => `<td>${(f.scores[n] * 100).toFixed(1)}%</td>`).join("") + "</tr>";
  });
  return html;
}

function dropZone(form, input, onFile) {
  input.addEventListener("change", () => input.files[0] && onFile(input.files[0]));
  form.addEventListener("dragover", e => { e.preventDefault(); form.classList.add("over"); });
  form.addEventListener("dragleave", () => form.classList.remove("over"));
  form.addEventListener("drop", e => {
    e.preventDefault(); form.classList.remove("over");
    if (e.dataTransfer.files[0]) onFile(e.dataTransfer.files[0]);
  });
}

// POST one file as a multipart field; the JSON reply, or {error} for a failed request.
async function postFile(url, field, file, statusEl, busyText) {
  statusEl.textContent = busyText;
  const body = new FormData();
  body.append(field, file);
  const reply = await (await fetch(url, { method: "POST", body })).json();
  if (reply.error) statusEl.textContent = `Error: ${reply.error}`;
  return reply;
}
