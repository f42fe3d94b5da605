"""The Ray engine: Ray Data reads the path list, an actor pool runs the detector (the model loads once per
actor), and each block is written as a Parquet file as soon as it is done, so a crash loses no finished rows.

Point it at a cluster with `--address ray://head:10001` (or `auto` on a cluster node); every node needs
maskwatch installed (`pip install 'maskwatch[ray]'`) and the images reachable under the same paths. Without an
address maskwatch starts a local cluster and shuts it down when the run ends, or, through a watchdog process
(ray_watchdog.py), when the process dies.
"""

from __future__ import annotations

from pathlib import Path

from maskwatch.batch.core import detect_row, part_name, row_schema


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

        rows = [detect_row(self.detector, str(p), self.conf, self.annotate_dir) for p in batch["path"]]
        return pa.Table.from_pylist(rows, schema=row_schema())


def run_ray(paths: list[str], out_dir: Path, model: str | None, conf: float, annotate_dir: Path | None,
            address: str | None = None, actors: int = 2, batch_size: int = 8, threads_per_actor: int = 1) -> int:
    import ray

    watchdog = None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a local cluster of our own: it ends with this run, or with this process however it ends
            from maskwatch.batch.ray_watchdog import start_watchdog

            watchdog = start_watchdog()
            ray.init(num_cpus=max(actors, 1), include_dashboard=False, log_to_driver=False)
    try:
        return _run(paths, out_dir, model, conf, annotate_dir, actors, batch_size, threads_per_actor)
    finally:
        if watchdog is not None:
            from maskwatch.batch.ray_watchdog import stop_watchdog

            ray.shutdown()
            stop_watchdog(watchdog)


def _run(paths: list[str], out_dir: Path, model: str | None, conf: float, annotate_dir: Path | None,
         actors: int, batch_size: int, threads_per_actor: int) -> int:
    import ray

    # Enough blocks for every actor to have work, and no block much bigger than a batch.
    blocks = max(1, min(len(paths), max(2 * actors, -(-len(paths) // batch_size))))
    dataset = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=blocks)
    results = dataset.map_batches(
        DetectActor,
        fn_constructor_kwargs={"model": model, "conf": conf,
                               "annotate_dir": str(annotate_dir) if annotate_dir else None,
                               "threads": threads_per_actor},
        batch_size=batch_size, concurrency=actors, num_cpus=threads_per_actor, batch_format="numpy")
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = part_name("ray")
    results.write_parquet(str(out_dir), filename_provider=_filename_provider(prefix))
    return len(paths)


def _filename_provider(prefix: str):
    """Flat part files in the results folder, named like the local engine's."""
    from ray.data.datasource import FilenameProvider

    class Provider(FilenameProvider):
        def get_filename_for_block(self, block, task_index, block_index):
            return f"{prefix}-{task_index:05d}-{block_index:03d}.parquet"

    return Provider()
