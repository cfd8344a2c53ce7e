// Upload a video -> a background job (id kept in the URL, so a reload resumes polling) ->
// the annotated video, the chart and downloads. Each upload starts from a clean page, and
// the job shown before is deleted on the server (its files are someone's face).
const statusEl = document.getElementById("status");
const progress = document.getElementById("progress");
const result = document.getElementById("result");
const player = document.getElementById("player");
const chart = document.getElementById("chart");
let current = null;  // the job this page shows; a poll of any other job stops

function clear() {
  if (current) fetch(`/api/videos/${current}`, { method: "DELETE" });
  current = null;
  result.hidden = true;
  player.pause();
  player.removeAttribute("src");
  player.load();
  chart.removeAttribute("src");
  chart.hidden = false;
  document.getElementById("summary").innerHTML = "";
  progress.hidden = true;
  progress.value = 0;
  history.replaceState(null, "", location.pathname);
}

async function upload(file) {
  clear();
  const reply = await postFile("/api/videos", "video", file, statusEl, progress);
  if (reply.stale) {  // another video was chosen meanwhile: this job is nobody's
    if (reply.id) fetch(`/api/videos/${reply.id}`, { method: "DELETE" });
    return;
  }
  if (reply.error) { progress.hidden = true; setStatus(statusEl, `Error: ${reply.error}`, "error"); return; }
  history.replaceState(null, "", `?job=${reply.id}`);
  progress.value = 0;
  current = reply.id;
  poll(reply.id);
}

async function poll(id) {
  if (current !== id) return;
  let job;
  try {
    const reply = await fetch(`/api/videos/${id}`);
    if (reply.status === 503) throw new Error("the server is stopping");
    job = await reply.json();
  } catch (err) {
    if (current === id) setTimeout(() => poll(id), 2000);  // the server restarts: keep asking
    return;
  }
  if (current !== id) return;
  if (!job.status) {  // gone: expired, deleted, or the server restarted
    progress.hidden = true;
    history.replaceState(null, "", location.pathname);
    setStatus(statusEl, `Error: ${job.error}. Choose the video again to analyse it.`, "error");
    return;
  }
  progress.hidden = false;
  progress.value = job.progress;
  if (job.status === "failed") { progress.hidden = true; setStatus(statusEl, `Failed: ${job.error}`, "error"); return; }
  if (job.status !== "done") {
    setStatus(statusEl, `Processing… ${Math.round(job.progress * 100)}%`, "busy");
    setTimeout(() => poll(id), 500);
    return;
  }
  progress.hidden = true;
  show(job);
}

function show(job) {
  const faces = Object.entries(job.summary.faces);
  player.src = job.files.video;
  document.getElementById("mp4").href = job.files.video;  // saved under the upload's name
  document.getElementById("csv").href = job.files.csv;
  document.getElementById("json").href = job.files.json;
  const table = document.getElementById("summary");
  if (faces.length) {
    setStatus(statusEl, `Done: ${job.summary.frames} frames, ${faces.length} face${faces.length > 1 ? "s" : ""}`, "ok");
    chart.src = job.files.chart;
    table.innerHTML = "<tr><th>face</th><th>frames</th><th>mostly</th></tr>" + faces.map(([id, f]) =>
      `<tr class="face"><td>#${id}</td><td>${f.frames}</td><td><span style="color:${COLORS[f.dominant]}">■</span> ${f.dominant}</td></tr>`).join("");
  } else {
    setStatus(statusEl, `Done: ${job.summary.frames} frames, no faces found`, "info");
    chart.hidden = true;  // an empty chart says nothing
    table.innerHTML = '<tr><td class="empty">No faces found in this video: faces need to be frontal and at least 40 pixels tall.</td></tr>';
  }
  result.hidden = false;
}

dropZone(document.getElementById("form"), document.getElementById("file"), upload);
current = new URLSearchParams(location.search).get("job");
if (current) poll(current);
