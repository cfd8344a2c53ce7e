"""Where a batch's tasks run: a local process pool, or an existing Dask cluster (`cluster`).

Both keep one model per worker process (loaded once, used for every task) and hand results
back as tasks finish, in any order. Both survive a worker that dies: the local pool is
rebuilt and the tasks that were in flight run again; Dask's scheduler moves a dead
worker's tasks to the others. A task whose worker dies `RETRIES` times (on Dask: the
scheduler's `distributed.scheduler.allowed-failures`, also 3 by default) is reported as
failed instead of taking the whole batch down.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from ferkit.errors import FerkitError
from ferkit.jobs.analysis import Outcome, Task, init_worker, run_task
from ferkit.quiet import quiet_tensorflow

log = logging.getLogger(__name__)

RETRIES = 3
EXECUTORS = ("local", "dask")  # `ferkit batch --engine`

Results = Iterator[tuple[Task, list[Outcome]]]


class Executor(Protocol):
    """What `ferkit batch` needs of where its tasks run: `LocalExecutor`, `cluster.DaskExecutor`."""

    def run(self, tasks: Iterable[Task]) -> Results:
        """Each task with its outcomes, as tasks finish (in any order)."""
        ...

    def close(self) -> None: ...


def failed(task: Task, why: str) -> list[Outcome]:
    return [Outcome(path, error=f"{path}: {why}") for path in task.paths]


class LocalExecutor:
    """A process pool on this machine, one worker per core by default.

    At most one task per worker is in flight, so when a worker dies only those tasks are
    retried. Workers are spawned (not forked), so none inherits the driver's threads.
    """

    def __init__(self, workers: int | None = None, options: dict | None = None):
        if workers is not None and workers < 1:
            raise FerkitError(f"--workers must be 1 or more, got {workers}")
        self.workers = workers or os.cpu_count() or 1
        self.initargs = (options, os.getpid())

    def run(self, tasks: Iterable[Task]) -> Results:
        queue, tries = list(tasks)[::-1], {}
        while queue:
            others = set(multiprocessing.active_children())  # a notebook's own, say: not ours
            pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=self.initargs,
            )
            running: dict = {}
            try:
                while queue or running:
                    while queue and len(running) < self.workers:
                        task = queue.pop()
                        running[pool.submit(run_task, task)] = task
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        outcomes = future.result()  # raises if the pool broke: still running
                        yield running.pop(future), outcomes
            except BrokenProcessPool:
                log.warning("a worker died; retrying the %d task(s) it may have held", len(running))
                for task in running.values():
                    tries[task] = tries.get(task, 0) + 1
                    if tries[task] >= RETRIES:
                        yield task, failed(task, f"its worker died {RETRIES} times")
                    else:
                        queue.append(task)
                running.clear()
            finally:
                if running:  # stopped early (Ctrl-C): no waiting for work nobody will collect
                    for process in set(multiprocessing.active_children()) - others:
                        process.terminate()  # the pool's workers (it names them only privately)
                pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        pass


PARENT_CHECK_S = 0.5  # how often a worker looks whether the driver is still there


def _start_worker(options: dict | None, driver: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    threading.Thread(target=_exit_with, args=(driver,), daemon=True, name="ferkit-driver").start()
    quiet_tensorflow()  # a worker shares the terminal: `--model-engine keras` adds no chatter
    init_worker(options)


def _exit_with(driver: int) -> None:
    """End this worker once the driver is gone. A driver killed outright (`kill -9`, the
    out-of-memory killer) cleans nothing up, and its workers would live on, each holding a
    model (~175 MB), orphans adopted by another process: their parent changes."""
    while os.getppid() == driver:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)
