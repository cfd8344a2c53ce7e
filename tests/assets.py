"""Media the tests and the benchmarks make for themselves, from scikit-image's public-domain
astronaut photo (never FER2013 faces), and the real server they run against."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import skimage.data

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's chromium, installed by .ci/run


def astronaut() -> np.ndarray:
    """The 512x512 photo, BGR."""
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def three_faces(photo: np.ndarray | None = None) -> np.ndarray:
    """A 640x480 frame with three copies of the astronaut's head at different scales."""
    head = (astronaut() if photo is None else photo)[20:240, 130:330]
    frame = np.full((480, 640, 3), 120, np.uint8)
    for x, y, s in [(20, 40, 180), (260, 60, 140), (460, 200, 110)]:
        frame[y : y + s, x : x + s] = cv2.resize(head, (s, s))
    return frame


def paste_faces(photo: np.ndarray, size: tuple[int, int], layout) -> np.ndarray:
    """A canvas of `size` (w, h), a soft gradient, with the astronaut's head pasted at each
    (x, y, side) of `layout`; her face is about half the head's side."""
    w, h = size
    head = photo[20:240, 130:330]
    ramp = np.linspace(60, 190, w, dtype=np.float32)[None, :] + np.zeros((h, 1), np.float32)
    canvas = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
    for x, y, side in layout:
        canvas[y : y + side, x : x + side] = cv2.resize(head, (side, side))
    return canvas


def portraits() -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    """Faces shipped with installed packages, each a square BGR patch with its face's box
    (x, y, w, h) as shares of the patch: scikit-image's astronaut and cameraman, matplotlib's
    Grace Hopper, and the 100 faces of scikit-image's `lfw_subset` (25 px, so blurry once
    upscaled: the faint faces of a real group photo)."""
    import matplotlib

    sample = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    camera = cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2BGR)
    found = [  # the face boxes CenterFace gives in each photo
        (astronaut(), (184, 65, 86, 111)),
        (camera, (199, 115, 57, 85)),
        (cv2.imread(str(sample)), (177, 119, 178, 218)),
    ]
    out = [_portrait(image, box) for image, box in found]
    for face in skimage.data.lfw_subset()[:100]:  # the first 100 are faces, the rest not
        gray = cv2.cvtColor((face * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        out.append(_portrait(gray, (0, 0, 25, 25)))
    return out


def _portrait(image: np.ndarray, box) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A square patch twice the face's long side around it (the edges replicated)."""
    x, y, w, h = box
    side = 2 * max(w, h)
    x0, y0 = x + w // 2 - side // 2, y + h // 2 - side // 2
    pad = side
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    patch = padded[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    return patch, ((x - x0) / side, (y - y0) / side, w / side, h / side)


def group_photo(n: int, size: tuple[int, int]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """A group photo of `n` people on a canvas of `size` (w, h): heads side by side in rows,
    as close as a team photo stands, from `portraits` (every other one mirrored). Returns the
    picture and each face's true box (x, y, w, h), in reading order."""
    w, h = size
    cols = max(1, min(n, int(np.ceil(np.sqrt(n * w / h)))))
    rows = int(np.ceil(n / cols))
    cell = min(w // cols, h // rows)
    side = int(cell * 0.96)
    ramp = np.linspace(70, 180, w, dtype=np.float32)[None, :] + np.zeros((h, 1), np.float32)
    canvas = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
    sources, boxes = portraits(), []
    top = (h - rows * cell) // 2
    for i in range(n):
        row, col = divmod(i, cols)
        in_row = min(cols, n - row * cols)
        x = (w - in_row * cell) // 2 + col * cell
        y = top + row * cell
        patch, (fx, fy, fw, fh) = sources[i % len(sources)]
        patch = cv2.resize(patch, (side, side), interpolation=cv2.INTER_CUBIC)
        if i % 2:
            patch, fx = patch[:, ::-1], 1 - fx - fw
        canvas[y : y + side, x : x + side] = patch
        boxes.append((int(x + fx * side), int(y + fy * side), int(fw * side), int(fh * side)))
    return canvas, boxes


def astronaut_frames(photo: np.ndarray, n: int = 45, size=(640, 480)):
    """A slow pan and zoom over the astronaut's head; its first frame has one large face."""
    w, h = size
    for i in range(n):
        t = i / max(1, n - 1)
        side = int(420 - 120 * t)
        x0, y0 = int(20 + 60 * t), 0
        view = photo[y0 : y0 + side, x0 : x0 + side]
        frame = np.full((h, w, 3), 90, np.uint8)
        frame[:, (w - h) // 2 : (w - h) // 2 + h] = cv2.resize(view, (h, h))
        yield frame


def one_face() -> np.ndarray:
    """A 640x480 frame with one large face."""
    return next(astronaut_frames(astronaut(), 1))


def write_video(path: Path, frames, fps: int = 30, audio: bool = False) -> Path:
    """H.264 MP4; with `audio`, a 440 Hz AAC tone as long as the video."""
    frames = list(frames)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=44100, layout="mono") if audio else None
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        out.mux(stream.encode())
        if sound is not None:
            t = np.arange(int(44100 * len(frames) / fps)) / 44100
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(tone) - 1024, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate = 44100
                out.mux(sound.encode(chunk))
            out.mux(sound.encode())
    return path


def write_y4m(path: Path, frames) -> Path:
    """A fake-webcam clip; Chromium wants the plain C420 tag (not C420mpeg2)."""
    with open(path, "wb") as fh:
        fh.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420\n")
        for frame in frames:
            fh.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def start_server(*args: str, port: int | None = None) -> tuple[subprocess.Popen, int]:
    """`python main.py [args]` as a user starts it, on a free loopback port (or `port`: a
    restart on the same one), once it listens."""
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--port", str(port), *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.log = []  # its stderr lines, for tests that read what it logged
    for line in proc.stderr:  # gunicorn logs this once the socket is bound
        proc.log.append(line)
        if "Booting worker" in line:
            break
    # keep the pipe drained
    threading.Thread(target=lambda: proc.log.extend(proc.stderr), daemon=True).start()
    return proc, port


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL if it is not gone in 30 s."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tile_bomb_tiff(width: int = 64, tile: tuple[int, int] = (16384, 16368)) -> bytes:
    """A small TIFF that declares a tiny picture but holds one huge deflate tile (~260 KB)."""
    import struct
    import zlib

    packer, zeros = zlib.compressobj(9), bytes(1 << 20)
    size, body = tile[0] * tile[1], b""
    for start in range(0, size, len(zeros)):
        body += packer.compress(zeros[: min(len(zeros), size - start)])
    body += packer.flush()
    tags = [  # (tag, type, value): SHORT=3, LONG=4
        (256, 4, width), (257, 4, width), (258, 3, 8), (259, 3, 8), (262, 3, 1), (277, 3, 1),
        (322, 4, tile[0]), (323, 4, tile[1]), (324, 4, 8), (325, 4, len(body)),
    ]  # fmt: skip
    ifd_at = 8 + len(body)
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        ifd += struct.pack("<HHI", tag, kind, 1) + struct.pack(
            "<I" if kind == 4 else "<HH", value, *([0] if kind == 3 else [])
        )
    return b"II*\x00" + struct.pack("<I", ifd_at) + body + ifd + b"\x00\x00\x00\x00"


def png16_rgba(side: int = 6300) -> bytes:
    """A 16-bit RGBA PNG of `side` x `side` pixels (under the pixel cap) that compresses small."""
    ok, png = cv2.imencode(".png", np.zeros((side, side, 4), np.uint16))
    return png.tobytes()


@contextlib.contextmanager
def dask_cluster(folder: Path, workers: int = 2):
    """`dask scheduler` and `dask worker --nworkers N` on loopback, started as a user starts
    them; yields the scheduler's HOST:PORT once the N worker processes have joined."""
    from distributed import Client

    dask = Path(sys.executable).parent / "dask"
    info = Path(folder) / "scheduler.json"
    loopback = ["--host", "127.0.0.1", "--no-dashboard"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--port", "0", "--scheduler-file", info, *loopback], **quiet
        )
    ]
    try:
        procs.append(
            subprocess.Popen(
                [dask, "worker", "--scheduler-file", info, "--nworkers", str(workers)]
                + ["--nthreads", "1", "--memory-limit", "2GB", *loopback],
                **quiet,
            )
        )
        with Client(scheduler_file=str(info), timeout="60s") as client:
            client.wait_for_workers(workers, timeout=60)
            address = client.scheduler.address
        yield address.removeprefix("tcp://")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def exif_rotated_jpeg(image: np.ndarray) -> bytes:
    """A JPEG as a phone writes a portrait shot: pixels stored rotated, EXIF Orientation 6."""
    import io

    from PIL import Image

    stored = cv2.cvtColor(np.ascontiguousarray(np.rot90(image, 1)), cv2.COLOR_BGR2RGB)
    photo = Image.fromarray(stored)
    exif = photo.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def wait_for(condition, timeout: float = 60, what: str = "condition"):
    """Poll `condition` until it returns something true (which is returned), or fail after
    `timeout` seconds: a bounded wait on a state, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def size_switching_video(path: Path, big: tuple[int, int] = (2048, 1152)) -> Path:
    """An MP4 whose header declares 160x120 and whose later frames decode at `big`: the
    stream changes size midway (MPEG-4 part 2 packets of a second encoder, muxed as is)."""
    container = av.open(str(path), "w", format="mp4")
    stream = container.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
    for _ in range(3):
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((120, 160, 3), np.uint8))):
            container.mux(packet)
    other = av.CodecContext.create("mpeg4", "w")
    other.width, other.height, other.pix_fmt = *big, "yuv420p"
    other.time_base, other.framerate = Fraction(1, 10), Fraction(10)
    frame = av.VideoFrame.from_ndarray(np.zeros((big[1], big[0], 3), np.uint8)).reformat(
        format="yuv420p"
    )
    packets = other.encode(frame) + other.encode(None)
    for pts, packet in enumerate(packets, start=3):
        packet.stream, packet.pts, packet.dts, packet.time_base = stream, pts, pts, Fraction(1, 10)
        container.mux(packet)
    container.close()
    return path
