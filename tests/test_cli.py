"""The `ferkit` command as a user runs it: a real process, its exit status and its output."""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import pytest
from assets import astronaut_frames, stop_server, wait_for, write_video

from ferkit import __version__
from ferkit.cli import parser
from ferkit.labels import EMOTIONS


def ferkit(*args, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ferkit", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def assert_one_error_line(run: subprocess.CompletedProcess, *words: str) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    for word in words:
        assert word in lines[0]


def test_every_argument_has_help_and_every_command_examples():
    commands = parser()._subparsers._group_actions[0].choices
    assert set(commands) >= {"explore", "train", "evaluate", "export", "predict", "video", "serve"}
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"ferkit {name}: {action.dest} has no help"
        text = sub.format_help()
        assert "examples:" in text and f"ferkit {name} " in text.split("examples:")[1]
    assert "(default: auto)" in commands["predict"].format_help()  # --engine
    assert all(text.count("default") <= 1 for text in commands["predict"].format_help().split("--"))
    assert "(default: 5000)" in commands["serve"].format_help()


def test_choices_are_the_librarys():
    """The CLI lists choices by hand (so `--help` imports nothing heavy); they must be the
    library's own."""
    from ferkit.jobs.executors import EXECUTORS
    from ferkit.training.config import RECIPES
    from ferkit.vision.align import CROPS
    from ferkit.vision.detectors import DETECTORS

    commands = parser()._subparsers._group_actions[0].choices
    choices = {
        (name, a.dest): tuple(a.choices)
        for name, sub in commands.items()
        for a in sub._actions
        if a.choices
    }
    assert choices[("predict", "detector")] == DETECTORS
    assert choices[("predict", "crop")] == CROPS
    assert choices[("batch", "engine")] == EXECUTORS
    assert choices[("train", "recipe")] == tuple(RECIPES)


def test_version():
    run = ferkit("--version")
    assert run.returncode == 0 and run.stdout.strip() == f"ferkit {__version__}"


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, astronaut):
    folder = tmp_path_factory.mktemp("clip")
    return write_video(folder / "clip.mp4", astronaut_frames(astronaut, 6))


def test_video_creates_output_folders(tmp_path, short_clip):
    out = tmp_path / "missing" / "deeper" / "x.mp4"
    run = ferkit("video", short_clip, "--out", out, "--csv", tmp_path / "csv" / "f.csv")
    assert run.returncode == 0, run.stderr
    assert out.stat().st_size > 1000 and (tmp_path / "csv" / "f.csv").exists()


def test_video_checks_every_output_before_processing(tmp_path, short_clip):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    out = tmp_path / "x.mp4"
    run = ferkit("video", short_clip, "--out", out, "--csv", blocker / "x.csv")
    assert_one_error_line(run, "x.csv", "cannot create the folder")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def _small_file_limit() -> None:
    """In the child: files larger than 8 KB cannot be written (a disk that fills up)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (8_000, 8_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails (EFBIG) instead of killing


def test_a_full_disk_names_the_output_and_leaves_nothing(tmp_path, short_clip):
    out = tmp_path / "x.mp4"
    run = ferkit(
        "video", short_clip, "--out", out, "--csv", tmp_path / "f.csv", preexec_fn=_small_file_limit
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == f"error: {out}: cannot write (File too large)"
    assert list(tmp_path.iterdir()) == []  # no partial video, no temporary file


@pytest.mark.parametrize("command", ["evaluate", "explore", "predict"])
def test_an_output_folder_that_cannot_be_made_is_one_error_line(tmp_path, face_folders, command):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    run = ferkit(command, face_folders[1], "--out", blocker / "out")
    assert_one_error_line(run, "out", "cannot create the folder")


def test_predict_gives_each_image_its_own_output_and_a_csv(tmp_path, astronaut):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "photo.jpg"), astronaut)
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.flip(astronaut, 1))
    out, table = tmp_path / "o", tmp_path / "tables" / "faces.csv"
    inputs = [tmp_path / "a" / "photo.jpg", tmp_path / "b" / "photo.jpg", tmp_path / "photo.png"]
    run = ferkit("predict", *inputs, "--out", out, "--csv", table)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["photo-2.png", "photo-3.png", "photo.png"]
    rows = list(csv.DictReader(open(table)))
    assert list(rows[0]) == "file face_id x y w h detection emotion".split() + list(EMOTIONS)
    assert [r["file"] for r in rows] == [str(p) for p in inputs]  # one face each
    assert all(r["emotion"] == "happy" and r["face_id"] == "1" for r in rows)
    assert abs(sum(float(rows[0][e]) for e in EMOTIONS) - 1) < 0.01


def test_predict_on_an_empty_folder_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"Bud1")  # hidden: not an input
    assert_one_error_line(ferkit("predict", tmp_path / "empty"), "no files found", "empty")


def test_closed_pipe_is_no_error(face_folders):
    # like `ferkit evaluate ... --json | head -0`: the reader is gone before the first line
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferkit", "evaluate", str(face_folders[1]), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 0  # the reader chose to stop: no error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_on_a_busy_port_is_one_error_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        run = ferkit("serve", "--port", port, timeout=30)
    assert_one_error_line(run, f"127.0.0.1:{port}", "--port")
    assert "serving on" not in run.stdout and time.monotonic() - started < 15


def test_serve_loads_the_model_once_and_logs_with_request_ids(tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ferkit", "serve", "--port", str(port)], stderr=fh
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/health", headers={"X-Request-Id": "probe-1"}
                )
                with urllib.request.urlopen(request, timeout=5) as reply:
                    assert reply.headers["X-Request-Id"] == "probe-1"
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.2)
    finally:
        stop_server(proc)
    text = log.read_text()
    assert text.count("loaded the model") == 1, text
    assert "[probe-1] ferkit.web: GET /api/health -> 200" in text


def test_outputs_never_overwrite_inputs_and_photos_are_not_videos(
    tmp_path, astronaut, astronaut_video
):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(astronaut_video.read_bytes())
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), astronaut)
    before = clip.read_bytes()
    assert_one_error_line(ferkit("video", clip, "--out", clip), "overwrite")
    assert_one_error_line(ferkit("predict", photo, "--out", tmp_path), "overwrite")
    assert_one_error_line(ferkit("video", photo, "--out", tmp_path / "o.mp4"), "not a video")
    assert_one_error_line(ferkit("predict", tmp_path / "missing.jpg"), "no such file")
    assert clip.read_bytes() == before


def test_outputs_are_checked_against_inputs_each_other_and_folders(
    tmp_path, astronaut, short_clip, face_folders
):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), astronaut)
    before = photo.read_bytes()
    assert_one_error_line(ferkit("predict", photo, "--csv", photo), "overwrite an input")
    assert photo.read_bytes() == before
    (tmp_path / "folder").mkdir()
    assert_one_error_line(ferkit("predict", photo, "--csv", tmp_path / "folder"), "is a folder")
    same = tmp_path / "x.out"
    run = ferkit("video", short_clip, "--out", tmp_path / "v.mp4", "--csv", same, "--json", same)
    assert_one_error_line(run, "named for two outputs")
    assert not (tmp_path / "v.mp4").exists()  # refused before any work
    train, _ = face_folders
    inside = train / "happy" / "plots"
    assert_one_error_line(ferkit("explore", train, "--out", inside), "inside the data folder")
    assert not inside.exists() or not any(inside.iterdir())
    for sigma in ("nan", "-1", "1e9"):
        run = ferkit("evaluate", train, "--blur", sigma)
        assert_one_error_line(run, "--blur must be 0 to 20")
    (tmp_path / "none.txt").write_text("\n")
    run = ferkit("evaluate", train, "--only", tmp_path / "none.txt")
    assert_one_error_line(run, "none.txt: lists no images")


def test_special_files_are_refused_not_read(tmp_path):
    fifo, zero = tmp_path / "pipe.jpg", tmp_path / "zero.jpg"
    os.mkfifo(fifo)
    zero.symlink_to("/dev/zero")
    run = ferkit("predict", fifo, zero, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "pipe.jpg: not a regular file" in run.stderr
    assert "zero.jpg: not a regular file" in run.stderr


def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_partial_file(tmp_path, astronaut):
    clip = write_video(tmp_path / "long.mp4", astronaut_frames(astronaut, 240))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferkit", "video", str(clip), "--out", str(out / "a.mp4")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: list(out.glob(".*.tmp*")), 60, "the video's temporary file")
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted: nothing was written" in stderr and "Traceback" not in stderr
    assert list(out.iterdir()) == []


def test_signal_handlers_respect_nohup_and_are_restored(tmp_path):
    """`nohup ferkit train ...` keeps ignoring SIGHUP; an in-process caller gets its own
    handlers back when `main` returns."""
    import signal

    from ferkit.cli import main

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert main(["predict", str(tmp_path / "missing.jpg")]) == 2
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_gif_photo_is_read_like_any_other(tmp_path, astronaut):
    from PIL import Image

    gif = tmp_path / "astronaut.gif"
    Image.fromarray(cv2.cvtColor(astronaut, cv2.COLOR_BGR2RGB)).save(gif)
    run = ferkit("predict", gif, "--json")
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)["faces"]) == 1


def test_a_frame_larger_than_the_header_declared_is_refused(tmp_path):
    from assets import size_switching_video

    clip = size_switching_video(tmp_path / "switch.mp4")
    run = ferkit("video", clip, "--out", tmp_path / "o.mp4")
    assert run.returncode == 2 and "Traceback" not in run.stderr  # after the progress bar:
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "a frame of 2048x1152" in last
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))


@pytest.mark.parametrize(
    "args, hint",
    [
        (["predict", "x.jpg", "--ouy", "o"], "ferkit predict"),  # a typo in an option
        (["predikt", "x.jpg"], "ferkit"),  # in the command
        (["video", "clip.mp4"], "ferkit video"),  # --out missing
        (["serve", "--port", "99999"], "ferkit serve"),
        (["serve", "--port", "-1"], "ferkit serve"),
        (["serve", "--threads", "0"], "ferkit serve"),
        (["serve", "--max-upload-mb", "-1"], "ferkit serve"),
        (["serve", "--max-image-mb", "nan"], "ferkit serve"),
        (["serve", "--live-per-client", "-2"], "ferkit serve"),
    ],
)
def test_a_usage_mistake_is_one_error_line_with_a_hint(args, hint):
    run = ferkit(*args, timeout=30)
    assert_one_error_line(run, f"(see '{hint} --help')")
    assert "usage:" not in run.stderr and run.stdout == ""


def test_serve_refuses_a_source_that_is_not_there(tmp_path):
    missing = tmp_path / "clpi.mp4"  # mistyped
    started = time.monotonic()
    run = ferkit("serve", "--port", free_port(), "--source", missing, timeout=30)
    assert_one_error_line(run, f"--source {missing}: no such file")
    assert time.monotonic() - started < 15  # before the model loads or a port is taken


def test_tensorflow_says_nothing_of_its_own(tmp_path, astronaut):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), astronaut)
    run = ferkit("predict", photo, "--engine", "keras")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # no oneDNN, absl or CUDA lines
    assert run.stdout.startswith(f"{photo}: 1 face(s)")


def test_evaluate_table_cuts_no_label(face_folders):
    run = ferkit("evaluate", face_folders[1])
    assert run.returncode == 0, run.stderr
    header = run.stdout.split("confusion (rows: true, columns: predicted)\n")[1].splitlines()[0]
    assert header.split() == list(EMOTIONS)


def test_predict_reports_a_photo_it_cannot_read_and_skips_a_loop(tmp_path, astronaut):
    folder = tmp_path / "photos"
    folder.mkdir()
    ok, jpeg = cv2.imencode(".jpg", astronaut)
    long_name = "y" * 251 + ".jpg"
    (folder / long_name).write_bytes(jpeg.tobytes())
    (folder / "cut.jpg").write_bytes(jpeg.tobytes()[:2])  # its content cannot say JPEG
    (folder / "notes.txt").write_text("not a photo\n")
    os.symlink("loop", folder / "loop")
    out = tmp_path / "out"
    run = ferkit("predict", folder, "--out", out)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.count("error:") == 1 and f"error: {folder / 'cut.jpg'}: " in run.stderr
    assert f"note: left out {folder / 'loop'}: a symbolic link loop" in run.stderr
    assert "left out 1 file(s) in the folders that are not photos" in run.stderr
    assert f"{folder / long_name}: 1 face(s)" in run.stdout
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 2 and all(len(n.encode()) <= 255 for n in written)
