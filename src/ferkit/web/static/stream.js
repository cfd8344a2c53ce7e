// The server's MJPEG stream; when it has none, say why and how to start the server with one.
const feed = document.getElementById("feed");
const statusEl = document.getElementById("status");

// An MJPEG image may fire no load event, so watch for its first frame instead.
const waiting = setInterval(() => {
  if (!feed.naturalWidth) return;
  clearInterval(waiting);
  setStatus(statusEl, "Live from the server", "ok");
}, 200);

feed.addEventListener("error", async () => {
  clearInterval(waiting);
  feed.hidden = true;
  let reason = "the server sent no stream";
  try {
    const reply = await fetch(feed.dataset.src);  // an error is a short JSON reply
    if (!reply.ok) reason = (await reply.json()).error || reason;
    else reply.body.cancel();
  } catch (err) {
    reason = "the server cannot be reached";
  }
  setStatus(statusEl, `No server stream: ${reason}.`, "error");
  document.getElementById("help").hidden = false;
});

feed.src = feed.dataset.src;  // after the listeners, so a quick error is not missed
