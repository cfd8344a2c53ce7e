// Upload a photo -> POST /api/predict -> the photo with boxes and a table of scores.
const statusEl = document.getElementById("status");
const canvas = document.getElementById("canvas");

async function predict(file) {
  const reply = await postFile("/api/predict", "image", file, statusEl, "Analysing…");
  if (reply.error) return;
  const img = new Image();
  img.onload = () => {
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    drawFaces(ctx, reply.faces, img.naturalWidth / reply.width, img.naturalHeight / reply.height);
    URL.revokeObjectURL(img.src);
  };
  img.src = URL.createObjectURL(file);
  document.getElementById("results").innerHTML = scoreTable(reply.faces);
  statusEl.textContent = `${reply.faces.length} face(s) found`;
}

dropZone(document.getElementById("form"), document.getElementById("file"), predict);
