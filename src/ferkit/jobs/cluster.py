"""`--engine dask`: a batch's tasks on an existing Dask distributed cluster, by address.

Needs the `cluster` extra (`pip install "ferkit[cluster]"`). The model is loaded once in
every worker process by a worker plugin, also in a worker that joins or is restarted
later; a worker that dies has its tasks moved to the others by the scheduler. The workers
must read the input files by the same absolute paths as the driver (a shared file system).
"""

from __future__ import annotations

from collections.abc import Iterable

from distributed import Client, WorkerPlugin, as_completed

from ferkit.errors import FerkitError
from ferkit.jobs.analysis import Task, init_worker, run_task
from ferkit.jobs.executors import Results, failed


class ModelPlugin(WorkerPlugin):
    """Load the model when a worker process starts, before it runs any task."""

    def __init__(self, options: dict):
        self.options = options

    def setup(self, worker) -> None:
        init_worker(self.options)


class DaskExecutor:
    def __init__(self, address: str, options: dict | None = None):
        try:
            self.client = Client(address, timeout="15s")
        except OSError as err:
            raise FerkitError(f"--address {address}: no Dask scheduler answers ({err})") from err
        self.client.register_plugin(ModelPlugin(options or {}), name="ferkit-model")

    def run(self, tasks: Iterable[Task]) -> Results:
        futures = {self.client.submit(run_task, t, pure=False): t for t in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield task, future.result()
            except Exception as err:  # the scheduler gave up on it (KilledWorker and the like)
                yield task, failed(task, f"{type(err).__name__}: {err}")

    def close(self) -> None:
        self.client.close()
