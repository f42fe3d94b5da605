"""Batch detection: local engine and a real local Ray cluster give the same rows; resumable; bad inputs are rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from maskwatch.batch.core import collect_inputs, read_results
from maskwatch.batch.run import run_batch

STEMS = ["maksssksksss0", "maksssksksss1", "maksssksksss94", "maksssksksss657", "maksssksksss5"]


@pytest.fixture(scope="module")
def images(tmp_path_factory, data_dir) -> Path:
    folder = tmp_path_factory.mktemp("batch_in")
    for stem in STEMS:
        shutil.copy(data_dir / "images" / f"{stem}.jpg", folder)
    (folder / "notes.jpg").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    return folder


def rows_by_path(out: Path) -> dict[str, dict]:
    return {row["path"]: row for row in read_results(out).to_pylist()}


def test_local_engine_writes_one_row_per_image_with_errors_as_rows(images, tmp_path):
    summary = run_batch(str(images), tmp_path / "out", "local", threads=2)
    assert (summary.inputs, summary.processed, summary.skipped) == (7, 7, 0)
    rows = rows_by_path(tmp_path / "out")
    assert len(rows) == 7
    bad = rows[str(images / "notes.jpg")]
    assert "not a readable image" in bad["error"] and bad["faces"] == 0
    assert "empty file" in rows[str(images / "empty.png")]["error"]
    good = rows[str(images / "maksssksksss657.jpg")]
    assert good["error"] is None and (good["width"], good["height"]) == (400, 267)
    detections = json.loads(good["detections"])
    assert good["faces"] == len(detections) >= 5
    assert good["with_mask"] + good["without_mask"] + good["mask_weared_incorrect"] == good["faces"]


def test_a_second_run_skips_finished_images_and_a_lost_part_is_redone(images, tmp_path):
    out = tmp_path / "out"
    run_batch(str(images), out, "local", threads=2)
    again = run_batch(str(images), out, "local", threads=2)
    assert (again.processed, again.skipped) == (0, 7)
    for part in out.glob("*.parquet"):
        part.unlink()
    (out / "part-crashed.parquet").write_bytes(b"PAR1 cut short")  # what a crash mid-write may leave
    redo = run_batch(str(images), out, "local", threads=2)
    assert redo.processed == 7


def test_inputs_from_a_list_file_and_a_glob(images, tmp_path):
    listing = tmp_path / "paths.txt"
    listing.write_text(f"# my photos\n{images / 'maksssksksss0.jpg'}\n\n{images / 'maksssksksss1.jpg'}\n")
    assert collect_inputs(str(listing)) == [str(images / "maksssksksss0.jpg"), str(images / "maksssksksss1.jpg")]
    assert len(collect_inputs(str(images / "*.jpg"))) == 6


@pytest.mark.slow
def test_ray_engine_on_a_local_cluster_gives_the_same_rows_as_local(images, tmp_path):
    ray = pytest.importorskip("ray")
    local = run_batch(str(images), tmp_path / "local", "local", threads=1)
    try:
        on_ray = run_batch(str(images), tmp_path / "ray", "ray", actors=2)
        resumed = run_batch(str(images), tmp_path / "ray", "ray", actors=2)
    finally:
        ray.shutdown()
    assert local.processed == on_ray.processed == 7 and resumed.processed == 0
    a, b = rows_by_path(tmp_path / "local"), rows_by_path(tmp_path / "ray")
    assert a.keys() == b.keys()
    for path in a:
        assert a[path]["error"] == b[path]["error"]
        assert json.loads(a[path]["detections"]) == json.loads(b[path]["detections"]), path
