// Upload a video -> a background job (id kept in the URL, so a reload resumes polling) ->
// the annotated video, the chart and downloads.
const statusEl = document.getElementById("status");
const progress = document.getElementById("progress");

async function upload(file) {
  const reply = await postFile("/api/videos", "video", file, statusEl, "Uploading…");
  if (reply.error) return;
  history.replaceState(null, "", `?job=${reply.id}`);
  poll(reply.id);
}

async function poll(id) {
  const res = await fetch(`/api/videos/${id}`);
  const job = await res.json();
  if (job.error && !job.status) { statusEl.textContent = `Error: ${job.error}`; return; }
  progress.hidden = false;
  progress.value = job.progress;
  if (job.status === "failed") { statusEl.textContent = `Failed: ${job.error}`; return; }
  if (job.status !== "done") {
    statusEl.textContent = `Processing… ${Math.round(job.progress * 100)}%`;
    setTimeout(() => poll(id), 500);
    return;
  }
  statusEl.textContent = `Done: ${job.summary.frames} frames`;
  document.getElementById("player").src = job.files.video;
  document.getElementById("chart").src = job.files.chart;
  document.getElementById("csv").href = job.files.csv;
  document.getElementById("json").href = job.files.json;
  document.getElementById("summary").innerHTML = "<tr><th>face</th><th>frames</th><th>mostly</th></tr>" +
    Object.entries(job.summary.faces).map(([id, f]) =>
      `<tr class="face"><td>${id}</td><td>${f.frames}</td><td>${f.dominant}</td></tr>`).join("");
  document.getElementById("result").hidden = false;
}

dropZone(document.getElementById("form"), document.getElementById("file"), upload);
const resumeId = new URLSearchParams(location.search).get("job");
if (resumeId) poll(resumeId);
