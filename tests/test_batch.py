"""`ferkit batch` on small generated corpora: tables, bad files, resume after a kill, and a
real 2-worker Dask cluster on loopback that loses a worker mid-job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import psutil
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from assets import astronaut_frames, dask_cluster, one_face, three_faces, wait_for, write_video
from distributed import Client

from ferkit.cli import main
from ferkit.jobs.chunks import ranges, stitch
from ferkit.jobs.rows import FaceRow

CLIPS = 6
FRAMES = 40


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, astronaut) -> Path:
    """Six short 320x240 clips (each starting later in the same pan) and two photos."""
    root = tmp_path_factory.mktemp("corpus")
    frames = list(astronaut_frames(astronaut, FRAMES, size=(320, 240)))
    (root / "clips").mkdir()
    for i in range(CLIPS):
        write_video(root / "clips" / f"clip{i}.mp4", frames[i:])
    cv2.imwrite(str(root / "one.jpg"), one_face())
    cv2.imwrite(str(root / "three.png"), three_faces())
    return root


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """The corpus done once by the local engine, in one go: what every other run must equal."""
    out = tmp_path_factory.mktemp("reference")
    assert main(["batch", str(corpus), "--out", str(out), "--quiet", "--chunk-frames", "16"]) == 0
    return out


def faces_table(out: Path) -> list[dict]:
    rows = pq.read_table(out / "faces.parquet").to_pylist()
    return sorted(rows, key=lambda r: (r["file"], r["frame"], r["face_id"]))


def batch(corpus: Path, out: Path, *extra: str) -> subprocess.Popen:
    """`ferkit batch` as a user runs it from a terminal: in a process group of its own (so a
    kill takes all), with Ctrl-C's default action even when the suite itself was started in
    the background (`make test &`), where the shell makes its jobs ignore SIGINT."""
    return subprocess.Popen(
        [sys.executable, "-m", "ferkit", "batch", str(corpus), "--out", str(out), "--quiet"]
        + ["--chunk-frames", "16", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def finished(out: Path) -> dict:
    try:
        return json.loads((out / "manifest.json").read_text())["files"]
    except (FileNotFoundError, ValueError):
        return {}


def test_tables_cover_every_face_of_every_file(corpus, reference):
    manifest = finished(reference)
    assert len(manifest) == CLIPS + 2
    faces = faces_table(reference)
    per_file = {}
    for entry in manifest.values():
        rows = pacsv.read_csv(reference / entry["outputs"]["csv"]).to_pylist()
        per_file[entry["name"]] = rows
    assert len(faces) == sum(len(r) for r in per_file.values())
    assert len(per_file["three.png"]) == 3
    assert {r["face_id"] for r in per_file["three.png"]} == {1, 2, 3}
    # a clip is chunked (16 frames) but its one face keeps one id across the edges
    clip = per_file["clips/clip0.mp4"]
    assert {r["face_id"] for r in clip} == {1}
    assert len(clip) >= FRAMES - 3 and len({r["frame"] for r in clip}) == len(clip)
    summary = pq.read_table(reference / "summary.parquet").to_pylist()
    assert len(summary) == CLIPS + 1 + 3  # one track per clip, one face + three faces
    clip_summary = next(s for s in summary if s["file"].endswith("clip0.mp4"))
    assert clip_summary["frames"] == len(clip)
    assert clip_summary["duration_s"] == pytest.approx(len(clip) / 30, abs=1e-3)
    assert sum(clip_summary[e] for e in ("angry", "happy", "neutral", "sad")) <= 1.0 + 1e-6
    assert pacsv.read_csv(reference / "faces.csv").num_rows == len(faces)
    assert pq.read_table(reference / "errors.parquet").num_rows == 0


def test_rerun_skips_done_files_and_redoes_changed_ones(corpus, reference, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    photo = corpus / "one.jpg"
    before = {p: p.stat().st_mtime_ns for p in (out / "files").rglob("*.csv")}
    changed = tmp_path / "changed.jpg"
    changed.write_bytes(photo.read_bytes())
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))
    try:
        assert main(["batch", str(corpus), "--out", str(out), "--quiet"]) == 0
    finally:
        os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns - 10**9))
    assert "1 file(s) analysed, 7 already done, 0 failed" in capsys.readouterr().out
    after = {p: p.stat().st_mtime_ns for p in (out / "files").rglob("*.csv")}
    redone = [p.name for p in before if after[p] != before[p]]
    assert redone == ["one.jpg.csv"]
    assert faces_table(out) == faces_table(reference)


def zero_frame_video(path: Path) -> Path:
    """An AVI with a video stream and not one frame."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        out.start_encoding()
        out.mux(stream.encode())
    return path


def test_bad_files_are_reported_and_the_rest_done(corpus, tmp_path, capsys):
    src = tmp_path / "mixed"
    src.mkdir()
    (src / "good.jpg").write_bytes((corpus / "one.jpg").read_bytes())
    clip = (corpus / "clips" / "clip0.mp4").read_bytes()
    (src / "corrupt.mp4").write_bytes(clip[:48] + bytes(200))
    (src / "notes.txt").write_text("not media\n")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    zero_frame_video(src / "empty.avi")
    out = tmp_path / "out"
    assert main(["batch", str(src), "--out", str(out), "--quiet"]) == 1
    captured = capsys.readouterr()
    err = captured.err
    errors = {
        Path(r["file"]).name: r["error"] for r in pq.read_table(out / "errors.parquet").to_pylist()
    }
    assert set(errors) == {"corrupt.mp4", "broken.jpg", "empty.avi"}  # notes.txt: not media
    assert "1 neither photo nor video left out" in captured.out
    assert "no decodable frames" in errors["empty.avi"]
    assert all(name in message for name, message in errors.items())
    assert err.count("error:") == 3
    assert {r["file"] for r in faces_table(out)} == {str(src / "good.jpg")}
    assert [Path(k).name for k in finished(out)] == ["good.jpg"]
    # the failed files are not recorded as done: a rerun tries them again
    assert main(["batch", str(src), "--out", str(out), "--quiet"]) == 1
    assert "0 file(s) analysed, 1 already done, 3 failed" in capsys.readouterr().out


def test_killed_run_loses_only_files_in_flight_and_resumes(corpus, reference, tmp_path):
    out = tmp_path / "out"
    proc = batch(corpus, out, "--workers", "2")
    try:
        wait_for(lambda: len(finished(out)) >= 2, what="two finished files")
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done = finished(out)
    assert 2 <= len(done) < CLIPS + 2
    for entry in done.values():  # every file the manifest claims is complete
        rows = pacsv.read_csv(out / entry["outputs"]["csv"]).num_rows
        summary = json.loads((out / entry["outputs"]["summary"]).read_text())
        assert rows == sum(face["frames"] for face in summary["faces"].values())
    stamps = {
        e["outputs"]["csv"]: (out / e["outputs"]["csv"]).stat().st_mtime_ns for e in done.values()
    }
    rerun = batch(corpus, out)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert f"{len(done)} already done" in stdout
    assert all((out / rel).stat().st_mtime_ns == ns for rel, ns in stamps.items())
    assert faces_table(out) == faces_table(reference)


def test_ctrl_c_stops_at_once_and_keeps_finished_files(corpus, tmp_path):
    out = tmp_path / "out"
    proc = batch(corpus, out, "--workers", "2")
    try:
        wait_for(lambda: finished(out), what="a first finished file")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert "interrupted: finished files are kept" in stderr
    assert "Traceback" not in stderr
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    assert finished(out)


def test_stitch_keeps_ids_across_chunk_edges():
    box = [10, 10, 50, 50]
    row = lambda n, fid, b: FaceRow(n, n / 30, fid, *b, 0.9, "happy", *[0.1] * 7)  # noqa: E731
    first = [row(n, 1, box) for n in range(0, 10)] + [
        row(n, 2, [200, 10, 50, 50]) for n in range(8)
    ]
    # the second chunk starts at 10, warms up from 0: its ids are its own, in another order
    second = [row(n, 1, [200, 10, 50, 50]) for n in range(0, 8)] + [
        row(n, 2, box) for n in range(0, 20)
    ]
    rows = stitch([(10, second), (0, first)])
    ids = {(r.frame, r.face_id) for r in rows}
    assert {fid for n, fid in ids if n >= 10} == {1}  # the face at `box` is still face 1
    assert len(rows) == 10 + 8 + 10
    assert ranges(100, 40) == [(0, 40), (40, 80), (80, None)]
    assert ranges(88, 40) == [(0, 40), (40, None)]  # no 8-frame sliver at the end
    assert ranges(30, 40) == [(0, None)]


@pytest.fixture
def cluster(tmp_path):
    with dask_cluster(tmp_path, workers=2) as address:
        yield address


def test_dask_cluster_loses_a_worker_and_the_table_is_still_exact(
    corpus, reference, cluster, tmp_path
):
    with Client(cluster, timeout="30s") as client:
        pids = client.run(os.getpid)
    out = tmp_path / "out"
    proc = batch(corpus, out, "--engine", "dask", "--address", cluster)
    try:
        wait_for(lambda: len(finished(out)) >= 1, what="a first finished file")
        assert proc.poll() is None, "the run ended before a worker could be killed"
        victim = psutil.Process(next(iter(pids.values())))
        victim.kill()
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert f"{CLIPS + 2} file(s) analysed" in stdout
    assert faces_table(out) == faces_table(reference)
    with Client(cluster, timeout="30s") as client:  # the nanny restarted the worker
        client.wait_for_workers(2, timeout=60)
        assert victim.pid not in client.run(os.getpid).values()


def test_local_pool_survives_a_killed_worker(corpus, reference, tmp_path):
    out = tmp_path / "out"
    proc = batch(corpus, out, "--workers", "2")
    try:
        wait_for(lambda: len(finished(out)) >= 1, what="a first finished file")
        workers = wait_for(
            lambda: [
                p
                for p in psutil.Process(proc.pid).children()
                if "spawn_main" in " ".join(p.cmdline())
            ],
            what="worker processes",
        )
        assert proc.poll() is None, "the run ended before a worker could be killed"
        workers[0].kill()
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert faces_table(out) == faces_table(reference)


def test_user_mistakes_exit_2(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "*.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "matches no file" in capsys.readouterr().err
    os.mkfifo(tmp_path / "pipe.mp4")  # named, so an input: refused, not read (it would block)
    assert main(["batch", str(tmp_path / "pipe.mp4"), "--out", str(tmp_path / "o")]) == 1
    assert "pipe.mp4: not a regular file" in capsys.readouterr().err
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    assert main(["batch", str(photo), "--out", str(tmp_path / "o"), "--engine", "dask"]) == 2
    assert "--address" in capsys.readouterr().err
    assert main(["batch", str(tmp_path), "--out", str(tmp_path), "--quiet"]) == 2
    assert "files inside --out are never inputs" in capsys.readouterr().err
    assert main(["batch", str(photo), "--out", str(tmp_path / "o"), "--chunk-frames", "-1"]) == 2
    assert "--chunk-frames must be 0 (never) or more" in capsys.readouterr().err


def test_annotate_writes_copies_and_a_plain_run_does_not_satisfy_it(corpus, tmp_path, capsys):
    src = tmp_path / "two"
    src.mkdir()
    for name in ("clips/clip0.mp4", "one.jpg"):
        (src / Path(name).name).write_bytes((corpus / name).read_bytes())
    out = tmp_path / "out"
    assert main(["batch", str(src), "--out", str(out), "--quiet"]) == 0
    assert not list(out.rglob("*.annotated.*"))
    assert main(["batch", str(src), "--out", str(out), "--quiet", "--annotate"]) == 0
    assert "2 file(s) analysed, 0 already done" in capsys.readouterr().out
    png = cv2.imread(str(out / "files" / "one.jpg.annotated.png"))
    assert png.shape == cv2.imread(str(src / "one.jpg")).shape
    with av.open(str(out / "files" / "clip0.mp4.annotated.mp4")) as video:
        assert video.streams.video[0].frames == FRAMES
    entries = finished(out).values()
    assert all("annotated" in e["outputs"] for e in entries)


def test_an_edited_manifest_is_refused_and_stale_temporaries_removed(tmp_path, capsys):
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), one_face())
    out = tmp_path / "out"
    out.mkdir()
    entry = {"name": "../../pwned.png", "size": 1, "mtime_ns": 1, "outputs": {}}
    for files in (5, {"x": 5}, {"x": {}}, {str(photo): entry}):
        (out / "manifest.json").write_text(json.dumps({"version": 1, "files": files}))
        assert main(["batch", str(photo), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "manifest.json: not a ferkit batch manifest" in err and "Traceback" not in err
    assert not list(tmp_path.glob("pwned*"))
    (out / "manifest.json").write_text(json.dumps({"version": 2, "files": {}}))
    assert main(["batch", str(photo), "--out", str(out), "--quiet"]) == 2
    assert "a batch manifest of version 2, not 1" in capsys.readouterr().err
    (out / "manifest.json").unlink()
    stale = out / "files" / ".p.tmp4242.png.annotated.png"  # what a SIGKILL leaves
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    assert main(["batch", str(photo), "--out", str(out), "--quiet"]) == 0
    assert not stale.exists() and finished(out)


def test_a_loop_and_a_255_byte_name_are_no_obstacle(corpus, tmp_path, capsys):
    src = tmp_path / "odd"
    src.mkdir()
    photo = (corpus / "one.jpg").read_bytes()
    long_name = "x" * 251 + ".jpg"  # the longest name the file system takes
    (src / long_name).write_bytes(photo)
    (src / "one.jpg").write_bytes(photo)
    os.symlink("loop-b", src / "loop-a")
    os.symlink("loop-a", src / "loop-b")
    out = tmp_path / "out"
    for run in range(2):
        assert main(["batch", str(src), str(src), "--out", str(out), "--quiet"]) == 0
        captured = capsys.readouterr()
        assert captured.err.count("a symbolic link loop") == 2  # each once, though named twice
        assert f"note: left out {src / 'loop-a'}: a symbolic link loop" in captured.err
        assert f"{2 - 2 * run} file(s) analysed, {2 * run} already done" in captured.out
    assert {Path(r["file"]).name for r in faces_table(out)} == {long_name, "one.jpg"}
    assert all(len(p.name.encode()) <= 255 for p in (out / "files").iterdir())
    names = [e["name"] for e in finished(out).values()]
    shortened = next(n for n in names if n != "one.jpg")
    assert shortened.startswith("x" * 100) and shortened.endswith(".jpg")


def test_a_photo_that_cannot_be_read_is_an_error_not_another_kind(corpus, tmp_path, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    photo = (corpus / "one.jpg").read_bytes()
    (src / "good.jpg").write_bytes(photo)
    (src / "cut.jpg").write_bytes(photo[:2])  # truncated before its content says JPEG
    (src / "empty.png").write_bytes(b"")
    (src / "notes.txt").write_text("not media\n")
    out = tmp_path / "out"
    assert main(["batch", str(src), "--out", str(out), "--quiet"]) == 1
    captured = capsys.readouterr()
    errors = {
        Path(r["file"]).name: r["error"] for r in pq.read_table(out / "errors.parquet").to_pylist()
    }
    assert set(errors) == {"cut.jpg", "empty.png"}
    assert "1 file(s) analysed, 0 already done, 2 failed, 1 neither" in captured.out
    assert all(name in message for name, message in errors.items())


def test_kill_9_of_the_driver_takes_its_workers_along(corpus, tmp_path):
    out = tmp_path / "out"
    proc = batch(corpus, out, "--workers", "2")
    workers: list[psutil.Process] = []
    try:
        wait_for(lambda: finished(out), what="a first finished file")
        workers = wait_for(
            lambda: [
                p
                for p in psutil.Process(proc.pid).children()
                if "spawn_main" in " ".join(p.cmdline())
            ],
            what="worker processes",
        )
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.kill()  # the driver alone, as `kill -9 PID` does: no cleanup runs in it
        proc.wait(timeout=30)

        def gone(p: psutil.Process) -> bool:
            try:
                return p.status() == psutil.STATUS_ZOMBIE  # dead, not yet reaped
            except psutil.NoSuchProcess:
                return True

        wait_for(lambda: all(map(gone, workers)), timeout=20, what="the workers to end")
    finally:
        for p in [proc, *workers]:
            try:
                p.kill()
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
