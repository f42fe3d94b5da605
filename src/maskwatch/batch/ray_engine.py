"""The Ray engine: Ray Data reads the path list, an actor pool runs the detector (the model loads once per
actor), and each block is written as a Parquet file as soon as it is done, so a crash loses no finished rows.

Point it at a cluster from one of its nodes with `--address auto` or `--address HEAD:6379` (not through Ray's client,
ray://: Ray Data needs its driver on the cluster); every node needs maskwatch installed with its `ray` extra and the
images reachable under the same paths. Without an
address maskwatch starts a local cluster and shuts it down when the run ends, or, through a watchdog process
(ray_watchdog.py), when the process dies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from pathlib import Path

from maskwatch.batch.core import detect_row, part_name
from maskwatch.limits import BATCH_PART_ROWS
from maskwatch.predictions import row_schema

CONNECT_TIMEOUT_S = 5.0  # a cluster's head answers a TCP connect at once; a wrong --address is said after this


class DetectActor:
    """A callable class for `map_batches`: Ray builds one per actor, so the model loads once per worker."""

    def __init__(self, model: str | None, conf: float, annotate_dir: str | None, threads: int):
        from maskwatch.detector import Detector

        self.detector = Detector.load(model, threads=threads)
        self.conf = conf
        self.annotate_dir = Path(annotate_dir) if annotate_dir else None

    def __call__(self, batch: dict):
        """The rows as an Arrow table in the one row schema, so every block writes the same Parquet types."""
        import pyarrow as pa

        rows = [detect_row(self.detector, os.fsdecode(p), self.conf, self.annotate_dir, os.fsdecode(n))
                for p, n in zip(batch["path"], batch["name"])]
        return pa.Table.from_pylist(rows, schema=row_schema())


def run_ray(paths: list[str], out_dir: Path, model: str | None, conf: float, annotate_dir: Path | None,
            address: str | None = None, actors: int = 2, batch_size: int = 8, threads_per_actor: int = 1,
            names: dict[str, str] | None = None, verbose: bool = True, part_rows: int = BATCH_PART_ROWS,
            progress: bool = True) -> int:
    """The Ray engine: on the cluster that `address` (or RAY_ADDRESS) names, else on a Ray started for this run alone,
    which a watchdog process stops however this process ends. The caller's signal handlers are put back on the way out;
    returns how many paths were run."""
    import ray

    from maskwatch.stop_signals import current_handlers, restore_signals, stop_signals_as_interrupt

    watchdog, handlers = None, None
    address, named = cluster_address(address)
    if not ray.is_initialized():
        handlers = current_handlers()
        with _quiet(verbose):
            level = logging.INFO if verbose else logging.ERROR
            if address:
                _connect(address, named, log_to_driver=verbose, logging_level=level)
                _check_actor_fits(threads_per_actor)
            else:  # a local cluster of our own: it ends with this run, or with this process however it ends
                from maskwatch.batch.ray_watchdog import start_watchdog

                watchdog = start_watchdog()
                ray.init(num_cpus=max(actors, 1) * threads_per_actor, include_dashboard=False,
                         log_to_driver=verbose, logging_level=level)
        stop_signals_as_interrupt()  # ray.init set SIGTERM to exit at once; the run stops as for Ctrl-C instead
    try:
        with warnings.catch_warnings():
            if not verbose:  # Ray Data's advice on its actor pool sizes, not the user's business
                warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\.")
            return _run(paths, out_dir, model, conf, annotate_dir, actors, batch_size, threads_per_actor,
                        names or {}, part_rows, verbose, progress)
    finally:
        if watchdog is not None:
            from maskwatch.batch.ray_watchdog import stop_watchdog

            ray.shutdown()
            stop_watchdog(watchdog)
        if handlers is not None:
            restore_signals(handlers)  # the caller's, not Ray's nor ours


def _run(paths: list[str], out_dir: Path, model: str | None, conf: float, annotate_dir: Path | None,
         actors: int, batch_size: int, threads_per_actor: int, names: dict[str, str], part_rows: int,
         verbose: bool, progress: bool) -> int:
    import ray

    # Enough blocks for every actor to have work, none much bigger than a part of the local engine (a block is
    # written as one part: a crash loses the blocks in flight, and a folder of millions of rows holds thousands of
    # parts, not a part per batch).
    blocks = max(1, min(len(paths), max(2 * actors, -(-len(paths) // part_rows))))
    # As bytes: Arrow's strings are UTF-8, and a file name need not be (an old archive's Latin-1 names).
    dataset = ray.data.from_items([{"path": os.fsencode(p), "name": os.fsencode(names.get(p, Path(p).name))}
                                   for p in paths], override_num_blocks=blocks)
    results = dataset.map_batches(
        DetectActor,
        fn_constructor_kwargs={"model": model, "conf": conf,
                               "annotate_dir": str(annotate_dir) if annotate_dir else None,
                               "threads": threads_per_actor},
        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=threads_per_actor,
        batch_format="numpy")
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = part_name("ray")
    # Writing takes no CPU of its own: with every CPU held by the detector actors, a write that asked for one
    # would wait for the whole run, and an interrupted run would lose every finished row.
    with PartsProgress(out_dir, prefix, len(paths), enabled=progress and not verbose):  # (--verbose: Ray's bars)
        results.write_parquet(str(out_dir), filename_provider=_filename_provider(prefix),
                              ray_remote_args={"num_cpus": 0})
    return len(paths)


class PartsProgress:
    """A progress bar of the rows this run has written: Ray Data's own bars are off without --verbose, and a run
    over an archive would otherwise say nothing for hours. The parts on disk are counted every second (their
    Parquet footers only), so it moves a block at a time."""

    def __init__(self, out_dir: Path, prefix: str, total: int, enabled: bool = True, every_s: float = 1.0):
        self.out_dir, self.prefix, self.total, self.enabled, self.every_s = out_dir, prefix, total, enabled, every_s
        self.counted: set[Path] = set()
        self.stop = threading.Event()

    def __enter__(self) -> "PartsProgress":
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="detecting (Ray)", unit="img")
            self.thread = threading.Thread(target=self._watch, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stop.set()
            self.thread.join()
            self._count()
            self.bar.close()

    def _watch(self) -> None:
        while not self.stop.wait(self.every_s):
            self._count()

    def _count(self) -> None:
        import pyarrow.parquet as pq

        for part in sorted(set(self.out_dir.glob(f"{self.prefix}*.parquet")) - self.counted):
            try:
                rows = pq.read_metadata(part).num_rows
            except Exception:  # still being written: counted on a later look
                continue
            self.counted.add(part)
            self.bar.update(rows)


def cluster_address(address: str | None) -> tuple[str | None, str]:
    """The cluster to run on and what named it: --address, else RAY_ADDRESS (which ray.init follows anyway, and
    which `ray job submit` sets); (None, "") for a local Ray of this run."""
    if address:
        return address, "--address"
    named = os.environ.get("RAY_ADDRESS") or None
    return named, "RAY_ADDRESS" if named else ""


def check_address(address: str | None, named: str) -> None:
    """Refuses what cannot work before anything is written: Ray's client (ray://), and a HOST:PORT where nothing
    listens (ray.init would wait there for ever, saying nothing)."""
    import socket

    from maskwatch.errors import MaskwatchError

    host, _, port = (address or "").rpartition(":")
    if host and port.isdigit() and "://" not in address:
        if not 0 < int(port) < 65536:
            raise MaskwatchError(f"{named} {address}: {port} is no port (1 to 65535); a cluster's address is "
                                 f"HEAD:6379 (its GCS port) or auto")
        if int(port) == 8265:  # what a browser shows of a cluster: the dashboard, which ray.init cannot join
            raise MaskwatchError(f"{named} {address}: 8265 is the dashboard's port; a cluster's address is HEAD:6379 "
                                 f"(its GCS port), or auto on one of its nodes")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise MaskwatchError(f"{named} {address}: no Ray cluster answers there ({exc}); start one with `ray "
                                 f"start --head`, or leave out {named} for a local one") from exc
    if address and address.startswith("ray://"):
        # Tried with Ray 2.60: connected through the client, Ray Data's executor fails at the first block
        # ("'Worker' object has no attribute 'core_worker'"); Ray's docs send such work to Ray Jobs.
        raise MaskwatchError(
            f"{named} {address}: Ray's client (ray://) cannot run Ray Data, which the Ray engine is. Run `maskwatch "
            f"batch` on a node of the cluster with --address auto (or HEAD:6379), or submit it as a Ray job: ray job "
            f"submit --address http://HEAD:8265 -- maskwatch batch ... --engine ray --address auto")


def _connect(address: str, named: str, **kwargs) -> None:
    """ray.init on a cluster, its failures in one line: a ray:// address, no cluster there (or one that wants its
    token)."""
    import ray

    from maskwatch.errors import MaskwatchError

    check_address(address, named)
    try:
        ray.init(address=address, **kwargs)
    except ValueError as exc:
        raise MaskwatchError(f"{named} {address}: {exc}") from exc
    except ConnectionError as exc:
        token = ("" if os.environ.get("RAY_AUTH_MODE") else
                 "; if the cluster uses token authentication (what `ray start` sets up since Ray 2.59), set "
                 "RAY_AUTH_MODE=token here too (its token is read from RAY_AUTH_TOKEN or ~/.ray/auth_token)")
        raise MaskwatchError(f"{named} {address}: no Ray cluster answers there ({str(exc).splitlines()[0]}); "
                             f"start one with `ray start --head`, or leave out {named} for a local one"
                             f"{token}") from exc


def _check_actor_fits(threads_per_actor: int) -> None:
    """An actor asks its node for `threads_per_actor` CPUs; where no node of the cluster has that many, Ray would
    wait for one forever: said at once instead."""
    import ray

    from maskwatch.errors import MaskwatchError

    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")), default=0)
    if largest < threads_per_actor:
        ray.shutdown()  # (the connection this run made)
        raise MaskwatchError(f"--threads {threads_per_actor}: each Ray actor asks for that many CPUs, and the "
                             f"cluster's largest node has {largest:g}; give --threads {int(largest) or 1} or less")


@contextlib.contextmanager
def _quiet(verbose: bool):
    """Ray and Ray Data log at INFO (start-up, execution plans, progress every few seconds) to the terminal, and
    Ray's C++ core prints its own lines; a batch run prints its own summary, so Ray speaks only with --verbose.
    Python errors still raise; Ray's logs stay in /tmp/ray/session_*/logs."""
    import ray.data

    if verbose:
        yield
        return
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    # The C++ core reads its level at start-up and announces it on stderr, which is silenced for that moment.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _filename_provider(prefix: str):
    """Flat part files in the results folder, named like the local engine's."""
    from ray.data.datasource import FilenameProvider

    class Provider(FilenameProvider):
        # Ray 2.60's Parquet writer asks for a task's name and appends "-{i}.parquet"; in append mode it wants the
        # write's id in it. Older Ray asks for a block's whole file name, (block, task, block index) in 2.9.
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"{prefix}-{write_uuid}-{task_index:05d}"

        def get_filename_for_block(self, block, *where) -> str:
            task_index, block_index = where[-2:]
            return f"{prefix}-{task_index:05d}-{block_index:03d}.parquet"

    return Provider()
