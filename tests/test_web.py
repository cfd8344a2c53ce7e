import io
import time
from urllib.parse import quote

import av
import cv2
import numpy as np
import pytest

from ferkit.web import create_app


@pytest.fixture(scope="module")
def app(tmp_path_factory, astronaut_video):
    return create_app(
        {
            "DATA_DIR": str(tmp_path_factory.mktemp("jobs")),
            "MAX_CONTENT_LENGTH": 5 * 1024 * 1024,
            "SOURCE": str(astronaut_video),
        }
    )


@pytest.fixture()
def client(app):
    return app.test_client()


def jpeg(image) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.mark.parametrize("path", ["/", "/stream", "/image", "/video"])
def test_pages_render_with_local_assets_only(client, path):
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "ferkit" in html and "http://" not in html and "https://" not in html


def test_static_assets(client):
    assert client.get("/static/live.js").status_code == 200
    assert "getUserMedia" in client.get("/static/live.js").get_data(as_text=True)


def test_health(client):
    assert client.get("/api/health").get_json()["status"] == "ok"


def test_predict_multipart_and_raw(client, astronaut):
    reply = client.post("/api/predict", data={"image": (io.BytesIO(jpeg(astronaut)), "a.jpg")})
    body = reply.get_json()
    assert reply.status_code == 200 and body["width"] == 512 and body["height"] == 512
    assert body["faces"][0]["emotion"] == "happy" and len(body["faces"][0]["scores"]) == 7
    raw = client.post("/api/predict", data=jpeg(astronaut), content_type="image/jpeg")
    assert raw.get_json()["faces"][0]["box"] == body["faces"][0]["box"]


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"data": b""}, 400),
        ({"data": b"hello", "content_type": "text/plain"}, 415),
        ({"data": {"image": (io.BytesIO(b"\xff\xd8\xff\xe0 junk"), "x.jpg")}}, 400),
        ({"data": {"photo": (io.BytesIO(b"x"), "x.jpg")}}, 400),
        ({"data": b"\xff\xd8\xff" + b"0" * (6 * 1024 * 1024), "content_type": "image/jpeg"}, 413),
    ],
)
def test_predict_bad_input_gives_json_4xx(client, kwargs, code):
    reply = client.post("/api/predict", **kwargs)
    assert reply.status_code == code
    assert reply.is_json and reply.get_json()["error"]
    assert client.get("/api/health").status_code == 200  # still serving


def test_errors_say_what_was_wrong(client):
    reply = client.delete("/api/predict")
    assert reply.status_code == 405 and "POST" in reply.headers["Allow"]
    assert "Allowed: " in reply.get_json()["error"]
    parts = {f"f{i}": "x" for i in range(1100)}  # a small form of too many parts
    reply = client.post("/api/predict", data=parts, content_type="multipart/form-data")
    assert reply.status_code == 413 and reply.get_json()["error"] == "the form has too many parts"
    text = {"data": {"image": "photo.jpg"}, "content_type": "multipart/form-data"}
    reply = client.post("/api/predict", **text)  # curl -F image=photo.jpg, without the @
    assert reply.status_code == 400 and "is text, not a file" in reply.get_json()["error"]
    name = b'name="image"; filename="\xff\xfe.jpg"'  # not UTF-8: werkzeug drops the part
    body = b"--B\r\nContent-Disposition: form-data; " + name + b"\r\n\r\n\xff\xd8\xff\r\n--B--\r\n"
    reply = client.post("/api/predict", data=body, content_type="multipart/form-data; boundary=B")
    assert reply.status_code == 400 and "no part could be read" in reply.get_json()["error"]
    cut = {"image": (io.BytesIO(b"\xff\xd8\xff\xe0 cut short"), "../photos/beach.jpg")}
    reply = client.post("/api/predict", data=cut)  # named as sent, less the sender's folders
    assert reply.status_code == 400 and reply.get_json()["error"].startswith("beach.jpg: corrupt")


def test_video_job_lifecycle(client, app, astronaut_video):
    reply = client.post(
        "/api/videos",
        data={"video": (io.BytesIO(astronaut_video.read_bytes()), "../../etc/клип 1.mp4")},
    )
    assert reply.status_code == 202
    job_id = reply.get_json()["id"]
    assert app.extensions["ferkit.jobs"].get(job_id).finished.wait(60)
    job = client.get(f"/api/videos/{job_id}").get_json()
    assert job["status"] == "done", job
    assert job["summary"]["frames"] == 45
    video = client.get(job["files"]["video"])
    assert video.status_code == 200 and video.data[4:8] == b"ftyp"
    saved_as = quote("клип_1-video.mp4")  # the upload's name, not a path; the same for all
    assert video.headers["Content-Disposition"].endswith(f"filename*=UTF-8''{saved_as}")
    assert client.get(job["files"]["csv"]).data.startswith(b"frame,time_s,face_id")
    assert client.get(job["files"]["json"]).get_json() == job["summary"]  # one story
    assert job["summary"]["video"] == "клип 1.mp4"  # as sent, not the server's name for it
    assert client.get(f"/api/videos/{job_id}/upload.bin").status_code == 404
    assert client.get("/api/videos/nope").status_code == 404


def test_video_job_rejects_non_videos_and_reports_corrupt(client, app):
    jobs = dict(app.extensions["ferkit.jobs"].jobs)
    assert (
        client.post("/api/videos", data={"video": (io.BytesIO(b"text"), "a.mp4")}).status_code
        == 415
    )
    reply = client.post(
        "/api/videos",
        data={"video": (io.BytesIO(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64), "a.mp4")},
    )
    assert reply.status_code == 400  # refused from its header, before any job exists
    error = reply.get_json()["error"]
    assert error == "a.mp4: not a readable video (Invalid data found when processing input)"
    hollow = io.BytesIO()  # a well-formed H.264 MP4 header (sizes and all), no frame data
    with av.open(hollow, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((120, 160, 3), np.uint8))
        for packet in stream.encode(frame) + stream.encode():
            zeros = av.Packet(bytes(packet.size))
            zeros.stream, zeros.pts, zeros.dts = stream, packet.pts, packet.dts
            zeros.time_base = packet.time_base
            container.mux(zeros)
    reply = client.post("/api/videos", data={"video": (io.BytesIO(hollow.getvalue()), "h.mp4")})
    assert reply.status_code == 400, reply.get_json()  # its first frame tried now, not in a job
    assert reply.get_json()["error"].startswith("h.mp4: the video is damaged")
    assert app.extensions["ferkit.jobs"].jobs == jobs


def test_full_job_queue_answers_429(tmp_path, astronaut_video):
    app = create_app({"DATA_DIR": str(tmp_path), "MAX_JOBS": 1, "JOBS_PER_CLIENT": 0})
    client = app.test_client()
    data = astronaut_video.read_bytes()
    replies = [
        client.post("/api/videos", data={"video": (io.BytesIO(data), "v.mp4")}) for _ in range(4)
    ]
    codes = [r.status_code for r in replies]
    assert 429 in codes and codes[0] == 202
    refused = replies[codes.index(429)].get_json()["error"]
    assert refused == "too many video jobs in progress; try again later"


def test_finished_jobs_expire_with_their_files(tmp_path, astronaut_video):
    app = create_app({"DATA_DIR": str(tmp_path), "JOB_TTL_S": 0})
    client = app.test_client()
    data = astronaut_video.read_bytes()
    job_id = client.post("/api/videos", data={"video": (io.BytesIO(data), "v.mp4")}).get_json()[
        "id"
    ]
    job = app.extensions["ferkit.jobs"].jobs[job_id]
    assert job.finished.wait(60) and job.status == "done"
    assert client.get(f"/api/videos/{job_id}").status_code == 404
    assert not job.folder.exists()


def test_server_stream_is_mjpeg(app):
    client = app.test_client()
    reply = client.get("/video_feed", buffered=False)
    assert reply.status_code == 200 and reply.mimetype == "multipart/x-mixed-replace"
    chunk = next(reply.response)
    assert b"Content-Type: image/jpeg" in chunk and b"\xff\xd8" in chunk
    start = time.monotonic()
    for _ in range(20):  # a 30 fps file plays in real time (0.67 s), not as fast as it
        next(reply.response)  # decodes (~8 ms a frame: 0.16 s)
    assert time.monotonic() - start >= 0.4
    reply.close()


def test_server_stream_without_source_is_503(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "SOURCE": str(tmp_path / "none.mp4")})
    reply = app.test_client().get("/video_feed")
    assert reply.status_code == 503 and "cannot open" in reply.get_json()["error"]
    assert str(tmp_path) not in reply.get_data(as_text=True)  # the server's path stays in its log
