"""Ray against Dask distributed as `ferkit batch`'s cluster engine, on one machine, loopback only.

Both run the same tasks through the same driver (`ferkit.jobs.batch.run_batch`), with one model
per worker process: a Dask worker plugin, a Ray actor. Measured per engine: the start-up
of a 2-worker cluster with the engine's own start command until both workers are ready
(`ray start --head` / `dask scheduler` + `dask worker`), the memory of the cluster's
processes (idle, and the peak during a job), the job's time, and a second job during
which one busy worker process is killed with SIGKILL: does it finish, how much later,
and is its table identical to the first one's.

    .venv/bin/pip install "ray>=2.40"   # only for this comparison; ferkit keeps Dask
    .venv/bin/python bench/cluster_engines.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
from batch import make_corpus
from common import report
from media import dask_cluster

from ferkit.jobs.analysis import init_worker, run_task
from ferkit.jobs.batch import run_batch
from ferkit.jobs.executors import LocalExecutor, failed

OPTIONS = {"model": None, "engine": "auto", "detector": "centerface"}
MARKERS = {"ray": ("ray", "raylet", "gcs_server"), "dask": ("dask", "distributed")}


def cluster_processes(engine: str, since: float) -> list[psutil.Process]:
    """The engine's processes started after `since`, with their children (not this driver)."""
    found = {}
    for proc in psutil.process_iter(["pid", "create_time", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.pid != os.getpid() and proc.info["create_time"] >= since - 1:
            if any(m in cmd for m in MARKERS[engine]):
                found[proc.pid] = proc
                with contextlib.suppress(psutil.Error):
                    found.update((c.pid, c) for c in proc.children(recursive=True))
    return list(found.values())


def rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / 2**20


class RayEngine:
    """The batch on Ray: one actor per CPU, each loading the model once; a killed actor is
    restarted by Ray and its task retried."""

    def __init__(self, address: str):
        import ray
        from ray.util import ActorPool

        ray.init(address=address, logging_level="ERROR", log_to_driver=False)

        @ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=3)
        class Worker:
            def __init__(self, options):
                init_worker(options)

            def pid(self):
                return os.getpid()

            def run(self, task):
                return task, run_task(task)

        self.ray = ray
        self.actors = [Worker.remote(OPTIONS) for _ in range(int(ray.cluster_resources()["CPU"]))]
        self.pids = ray.get([a.pid.remote() for a in self.actors])  # and the models are loaded
        self.pool = ActorPool(self.actors)

    def run(self, tasks):
        tasks = list(tasks)
        for task in tasks:
            self.pool.submit(lambda actor, t: actor.run.remote(t), task)
        for task in tasks:  # in order, so a failure is charged to its own task
            try:
                yield self.pool.get_next()
            except Exception as err:  # an actor that could not be restarted, and the like
                yield task, failed(task, f"{type(err).__name__}: {err}")

    def close(self):
        self.ray.shutdown()


@contextlib.contextmanager
def profiler_off():
    os.environ["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"] = "False"
    try:
        yield
    finally:
        del os.environ["DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"]


@contextlib.contextmanager
def ray_cluster():
    """`ray start --head` with 2 CPUs on loopback; `ray stop` at the end."""
    ray = Path(sys.executable).parent / "ray"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    port = 6390
    subprocess.run(
        [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
        + ["--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env)


def local_baseline(corpus: Path, tmp: Path) -> dict:
    """`--engine local` (2 workers) through the same driver; its time includes starting the
    pool and loading the models, which the warm clusters have done before their jobs."""
    t0 = time.perf_counter()
    run_batch([str(corpus)], tmp / "local", LocalExecutor(2, OPTIONS), show_bar=False)
    return {
        "engine": "local (baseline)",
        "job_s": time.perf_counter() - t0,
        "face_rows": len(faces(tmp / "local")),
    }


def measure(name: str, corpus: Path, tmp: Path) -> dict:
    slug = name.replace(", ", "-").replace(" ", "-")
    first = tmp / f"{slug}-1"
    since = time.time()
    start = time.perf_counter()
    if name == "ray":
        stack = contextlib.ExitStack()
        address = stack.enter_context(ray_cluster())
        engine = RayEngine(address)
        pids = engine.pids
    else:
        stack = contextlib.ExitStack()
        if name == "dask, profiler off":  # the workers' statistical profiler samples every 10 ms
            stack.enter_context(profiler_off())
        address = stack.enter_context(dask_cluster(tmp, workers=2))
        from ferkit.jobs.cluster import DaskExecutor

        engine = DaskExecutor(address, OPTIONS)
        pids = list(engine.client.run(os.getpid).values())
    startup = time.perf_counter() - start
    with stack:
        try:
            idle = rss_mb(cluster_processes(engine_kind(name), since))
            peak = [idle]
            stop = threading.Event()

            def sample():
                while not stop.wait(0.2):
                    peak.append(rss_mb(cluster_processes(engine_kind(name), since)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            run_batch([str(corpus)], first, engine, show_bar=False)
            job = time.perf_counter() - t0
            stop.set()
            sampler.join()
            killed = tmp / f"{slug}-2"
            t0 = time.perf_counter()
            killer = threading.Thread(target=kill_one_busy, args=(killed, pids), daemon=True)
            killer.start()
            second = run_batch([str(corpus)], killed, engine, show_bar=False)
            job_killed = time.perf_counter() - t0
            killer.join()
            same = faces(first) == faces(killed)
        finally:
            engine.close()
        table = faces(first)
    return {
        "engine": name,
        "startup_s": startup,
        "idle_mb": idle,
        "peak_mb": max(peak),
        "job_s": job,
        "job_with_kill_s": job_killed,
        "failed_after_kill": len(second.errors),
        "table_identical": same,
        "face_rows": len(table),
        "same_as_local": table == faces(tmp / "local"),
    }


def engine_kind(name: str) -> str:
    return "ray" if name == "ray" else "dask"


def kill_one_busy(out: Path, pids: list[int]) -> None:
    """SIGKILL one worker process once the job has finished its first file."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "manifest.json").exists():
        time.sleep(0.05)
    psutil.Process(pids[0]).kill()


def faces(out: Path) -> list[dict]:
    rows = pq.read_table(out / "faces.parquet").to_pylist()
    return sorted(rows, key=lambda r: (r["file"], r["frame"], r["face_id"]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=6)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--photos", type=int, default=20)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_corpus(tmp / "corpus", args.clips, args.seconds, args.photos)
        rows.append(local_baseline(tmp / "corpus", tmp))
        for name in ("dask", "dask, profiler off", "ray"):
            rows.append(measure(name, tmp / "corpus", tmp))
    columns = ["engine", "startup_s", "idle_mb", "peak_mb", "job_s", "job_with_kill_s"]
    report(
        "cluster_engines",
        [*columns, "failed_after_kill", "table_identical", "same_as_local", "face_rows"],
        rows,
    )


if __name__ == "__main__":
    main()
