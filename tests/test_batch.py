"""Batch detection: local engine and a real local Ray cluster give the same rows; resumable; bad inputs are rows."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from maskwatch.predictions import read_results
from maskwatch.batch.run import run_batch
from maskwatch.errors import MaskwatchError

STEMS = ["maksssksksss0", "maksssksksss1", "maksssksksss94", "maksssksksss657", "maksssksksss5"]


@pytest.fixture(scope="module")
def images(tmp_path_factory, data_dir) -> Path:
    folder = tmp_path_factory.mktemp("batch_in")
    for stem in STEMS:
        shutil.copy(data_dir / "images" / f"{stem}.jpg", folder)
    (folder / "notes.jpg").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def late_errors(tmp_path_factory, data_dir) -> Path:
    """Good images first and a broken one last (by name): only the last part or block holds an error."""
    folder = tmp_path_factory.mktemp("late_errors")
    for stem in STEMS[:4]:
        shutil.copy(data_dir / "images" / f"{stem}.jpg", folder)
    (folder / "zz_broken.jpg").write_text("not an image")
    return folder


def rows_by_path(out: Path) -> dict[str, dict]:
    return {row["path"]: row for row in read_results(out).to_pylist()}


def error_types(out: Path) -> set[str]:
    """The type each Parquet part gives the error column: one schema means one type, whatever the part holds."""
    import pyarrow.parquet as pq

    return {str(pq.read_schema(part).field("error").type) for part in out.glob("*.parquet")}


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


def test_a_model_of_other_class_names_fills_the_count_columns_by_what_its_classes_mean(images, tmp_path):
    from conftest import shipped_head_named

    model = shipped_head_named(tmp_path / "model", ["face_mask", "face_nomask", "chin"])
    run_batch(str(images / "maksssksksss657.jpg"), tmp_path / "out", "local", threads=2, model=str(model))
    row = rows_by_path(tmp_path / "out")[str(images / "maksssksksss657.jpg")]
    labels = Counter(d["label"] for d in json.loads(row["detections"]))
    assert row["faces"] >= 5 and (row["with_mask"], row["without_mask"], row["mask_weared_incorrect"]) == (
        labels["face_mask"], labels["face_nomask"], labels["chin"])


def test_a_caller_can_leave_the_progress_bar_out(images, tmp_path, capsys):
    run_batch(str(images / "maksssksksss657.jpg"), tmp_path / "shown", "local", threads=2)
    assert "detecting" in capsys.readouterr().err
    run_batch(str(images / "maksssksksss657.jpg"), tmp_path / "quiet", "local", threads=2, progress=False)
    assert "detecting" not in capsys.readouterr().err


def test_a_second_run_skips_finished_images_and_a_lost_part_is_redone(images, tmp_path):
    out = tmp_path / "out"
    run_batch(str(images), out, "local", threads=2)
    again = run_batch(str(images), out, "local", threads=2)
    assert (again.processed, again.skipped) == (2, 5)  # the two unreadable files are tried again
    assert len(rows_by_path(out)) == 7 and sum(1 for _ in out.glob("*.parquet")) == 2
    for part in out.glob("*.parquet"):
        part.unlink()
    (out / "part-crashed.parquet").write_bytes(b"PAR1 cut short")  # what a crash mid-write may leave
    redo = run_batch(str(images), out, "local", threads=2)
    assert redo.processed == 7


def test_same_names_from_two_folders_get_two_annotated_images_and_two_rows(images, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(images / "maksssksksss0.jpg", other / "maksssksksss94.jpg")  # same name, another photo
    summary = run_batch([str(images / "maksssksksss94.jpg"), str(other)], tmp_path / "out", "local", annotate=True,
                        threads=2)
    assert summary.processed == 2
    annotated = sorted(p.relative_to(tmp_path / "out" / "annotated").as_posix()
                       for p in (tmp_path / "out" / "annotated").rglob("*.jpg"))
    assert annotated == [f"{images.name}/maksssksksss94.jpg", "other/maksssksksss94.jpg"]
    assert len(rows_by_path(tmp_path / "out")) == 2


def test_a_later_run_never_replaces_an_earlier_runs_copy_of_another_image(images, tmp_path, caplog):
    first, second, out = tmp_path / "monday", tmp_path / "tuesday", tmp_path / "out"
    for folder, photo in ((first, "maksssksksss0.jpg"), (second, "maksssksksss1.jpg")):
        folder.mkdir()
        shutil.copy(images / photo, folder / "IMG_0001.jpg")  # a camera's names start again on every card
    run_batch(str(first), out, "local", annotate=True, threads=2)
    monday = (out / "annotated" / "IMG_0001.jpg").read_bytes()
    for _ in range(2):  # (the second time: done, nothing written)
        run_batch(str(second), out, "local", annotate=True, threads=2)
    assert (out / "annotated" / "IMG_0001.jpg").read_bytes() == monday
    rows = rows_by_path(out)
    assert {p: r["annotated"] for p, r in rows.items()} == {str(first / "IMG_0001.jpg"): "annotated/IMG_0001.jpg",
                                                           str(second / "IMG_0001.jpg"): "annotated/IMG_0001-2.jpg"}
    assert all((out / r["annotated"]).is_file() for r in rows.values())
    assert f"annotated/IMG_0001-2.jpg (annotated/IMG_0001.jpg is {first / 'IMG_0001.jpg'}'s)" in caplog.text
    # A folder of an older version: its parts have no `annotated` column, so no row names a copy. A copy on disk
    # is still never replaced, and the run leaves every part with the column (one schema for folder readers).
    import pyarrow.parquet as pq

    for part in out.glob("*.parquet"):
        pq.write_table(pq.read_table(part).drop(["annotated"]), part)
    settings = json.loads((out / "_batch.json").read_text())
    del settings["copies_named"]  # (older versions did not write it)
    (out / "_batch.json").write_text(json.dumps(settings))
    assert {r["annotated"] for r in rows_by_path(out).values()} == {None}  # (read with it empty)
    third = tmp_path / "wednesday"
    third.mkdir()
    shutil.copy(images / "maksssksksss5.jpg", third / "IMG_0001.jpg")
    run_batch(str(third), out, "local", annotate=True, threads=2)
    assert (out / "annotated" / "IMG_0001.jpg").read_bytes() == monday
    assert rows_by_path(out)[str(third / "IMG_0001.jpg")]["annotated"] == "annotated/IMG_0001-3.jpg"
    assert all("annotated" in pq.read_schema(part).names for part in out.glob("*.parquet"))


def test_a_run_killed_after_its_copies_but_before_its_rows_writes_them_again_in_place(images, tmp_path):
    out = tmp_path / "out"
    run_batch([str(images / "maksssksksss0.jpg")], out, "local", annotate=True, threads=2)
    for part in out.glob("*.parquet"):  # as if killed before the rows were written: the copy is there, no row
        part.unlink()
    again = run_batch([str(images / "maksssksksss0.jpg")], out, "local", annotate=True, threads=2)
    assert again.processed == 1 and sorted(p.name for p in (out / "annotated").iterdir()) == ["maksssksksss0.jpg"]


def test_a_file_done_under_a_linked_folder_is_not_done_again_under_its_real_one(images, tmp_path):
    archive = tmp_path / "archive" / "2024"
    archive.mkdir(parents=True)
    shutil.copy(images / "maksssksksss0.jpg", archive / "x.jpg")
    (tmp_path / "current").symlink_to(archive)
    out = tmp_path / "out"
    assert run_batch(str(tmp_path / "current"), out, "local", threads=2).processed == 1
    again = run_batch([str(tmp_path / "current"), str(archive)], out, "local", threads=2)
    assert (again.processed, again.skipped) == (0, 1) and len(rows_by_path(out)) == 1


def test_names_that_are_not_utf8_get_rows_and_copies_and_are_not_done_twice(images, tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    latin1 = os.fsdecode(b"caf\xe9.jpg")  # an old archive's Latin-1 name: no UTF-8 string holds it as it is
    shutil.copy(images / "maksssksksss0.jpg", folder / latin1)
    (folder / os.fsdecode(b"bad\nname\xe9.jpg")).write_text("not an image")
    out = tmp_path / "out"
    first = run_batch(str(folder), out, "local", annotate=True, threads=2)
    again = subprocess.run([sys.executable, "-m", "maskwatch.cli", "batch", str(folder), "--out", str(out),
                            "--annotate"], capture_output=True, text=True)
    rows = rows_by_path(out)
    assert set(rows) == {str(folder / "caf\\xe9.jpg"), str(folder / "bad\nname\\xe9.jpg")}  # bytes as \xNN
    assert rows[str(folder / "caf\\xe9.jpg")]["error"] is None and (out / "annotated" / latin1).is_file()
    assert first.processed == 2 and "2 inputs: 1 processed now, 1 done before" in again.stdout
    assert "bad\\nname\\xe9.jpg: not a readable image" in again.stderr  # one line, not two


def test_results_stay_readable_when_only_a_later_part_holds_errors(late_errors, tmp_path):
    out = tmp_path / "out"
    run_batch(str(late_errors), out, "local", threads=2, part_rows=2)
    assert len(list(out.glob("*.parquet"))) == 3  # [good, good] [good, good] [broken]
    assert error_types(out) == {"string"}
    rows = rows_by_path(out)
    assert len(rows) == 5 and "not a readable image" in rows[str(late_errors / "zz_broken.jpg")]["error"]
    again = run_batch(str(late_errors), out, "local", threads=2, part_rows=2)  # a resume reads them too
    assert (again.processed, again.skipped) == (1, 4) and len(rows_by_path(out)) == 5


def test_a_failed_image_fixed_since_is_done_on_the_next_run_and_keeps_one_row(late_errors, tmp_path, data_dir):
    import pyarrow.dataset as ds

    folder = tmp_path / "in"
    shutil.copytree(late_errors, folder)
    out = tmp_path / "out"
    first = run_batch(str(folder), out, "local", threads=2, part_rows=2)
    assert set(first.failed) == {str(folder / "zz_broken.jpg")}
    shutil.copy(data_dir / "images" / "maksssksksss5.jpg", folder / "zz_broken.jpg")  # the download finished
    again = run_batch(str(folder), out, "local", threads=2, part_rows=2)
    assert (again.processed, again.skipped, again.failed) == (1, 4, {})
    rows = ds.dataset(out, format="parquet").to_table().to_pylist()  # any Parquet reader: one row per image
    assert len(rows) == 5 and all(row["error"] is None for row in rows)


def test_a_photo_replaced_under_its_name_runs_again_and_rows_of_deleted_files_are_said(late_errors, tmp_path,
                                                                                       data_dir, caplog):
    """Rows were matched by path alone: a photo re-exported under its name kept its old picture's row, silently."""
    import pyarrow.dataset as ds

    folder = tmp_path / "in"
    shutil.copytree(late_errors, folder)
    out = tmp_path / "out"
    run_batch(str(folder), out, "local", threads=2, part_rows=2)
    first = rows_by_path(out)[str(folder / "maksssksksss0.jpg")]
    assert first["file_size"] == (folder / "maksssksksss0.jpg").stat().st_size
    shutil.copy(data_dir / "images" / "maksssksksss657.jpg", folder / "maksssksksss0.jpg")  # another photo
    (folder / "maksssksksss1.jpg").unlink()
    with caplog.at_level("WARNING"):
        again = run_batch(str(folder), out, "local", threads=2, part_rows=2)
    assert "1 image(s) changed since their rows were written" in caplog.text and "maksssksksss0.jpg" in caplog.text
    assert "1 row(s) in the results folder name files that no longer exist" in caplog.text
    assert again.processed == 2  # the changed photo and the broken file (tried again)
    rows = ds.dataset(out, format="parquet").to_table().to_pylist()  # one row per image, the new one
    replaced = [row for row in rows if row["path"] == str(folder / "maksssksksss0.jpg")]
    assert len(replaced) == 1 and (replaced[0]["width"], replaced[0]["height"]) == (400, 267)  # 657's size
    assert replaced[0]["detections"] != first["detections"]
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert run_batch(str(folder), out, "local", threads=2).processed == 1  # (the broken file only)
    assert "changed since" not in caplog.text


def test_ctrl_c_keeps_the_rows_done_and_the_next_run_goes_on(images, tmp_path, monkeypatch):
    import maskwatch.batch.local as local

    calls = []

    def interrupted_at_the_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return detect_row(*args, **kwargs)

    detect_row = local.detect_row
    monkeypatch.setattr(local, "detect_row", interrupted_at_the_fourth)
    out = tmp_path / "out"
    stopped = run_batch(str(images), out, "local", threads=2)  # 200 rows per part: none written before the stop
    assert stopped.interrupted and stopped.processed == 3 and len(rows_by_path(out)) == 3
    good = sum(1 for row in rows_by_path(out).values() if row["error"] is None)  # empty.png comes first, and fails
    monkeypatch.setattr(local, "detect_row", detect_row)
    rest = run_batch(str(images), out, "local", threads=2)
    assert not rest.interrupted and (rest.processed, rest.skipped) == (7 - good, good) and len(rows_by_path(out)) == 7


def test_a_results_folder_of_other_settings_is_refused_and_bad_options_are_named(images, tmp_path, caplog):
    out = tmp_path / "out"
    run_batch(str(images / "maksssksksss0.jpg"), out, "local", threads=2)
    for options, message in (({"conf": 0.6}, "conf 0.4 there, 0.6 now"), ({"annotate": True}, "annotate False there"),
                             ({"model": str(images / "x.onnx")}, "model 'shipped' there")):
        with pytest.raises(MaskwatchError, match=message):
            run_batch(str(images), out, "local", threads=2, **options)
    with pytest.raises(MaskwatchError, match="--conf is a score from 0 to 1"):
        run_batch(str(images), tmp_path / "other", "local", conf=2)
    # Under Ray these hung for ever without a word (an address where nothing listens), printed each actor's
    # traceback (a model that cannot load) or a ValueError traceback (no actors): refused here, nothing written.
    for options, message in (({"address": "127.0.0.1:1"}, "--address 127.0.0.1:1: no Ray cluster answers there"),
                             ({"model": str(images / "x.onnx")}, "no such model file or run folder"),
                             ({"actors": 0}, "--actors must be at least 1, not 0"),
                             ({"threads": 0}, "--threads must be at least 1, not 0")):
        with pytest.raises(MaskwatchError, match=message):
            run_batch(str(images), tmp_path / "ray", "ray", **options)
    assert not (tmp_path / "ray").exists()
    with caplog.at_level("WARNING", logger="maskwatch.batch.run"):  # (all three were ignored without a word)
        run_batch(str(images / "maksssksksss0.jpg"), tmp_path / "local", "local", threads=2, address="auto")
    assert "--address, --actors and --verbose are for --engine ray; this run is local" in caplog.text
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 1  # the settings file is not a part to Parquet readers


def test_the_cli_names_unreadable_files_and_exits_1_when_none_could_be_read(images, tmp_path):
    cli = [sys.executable, "-m", "maskwatch.cli", "batch", "--out", str(tmp_path / "out")]
    some = subprocess.run([*cli, str(images)], capture_output=True, text=True, timeout=300)
    assert some.returncode == 0 and "2 file(s) could not be read" in some.stderr
    assert f"{images / 'empty.png'}: empty file" in some.stderr
    none = subprocess.run([*cli, str(images / "notes.jpg"), "--out", str(tmp_path / "none")], capture_output=True,
                          text=True, timeout=300)
    assert none.returncode == 1 and "no image could be read" in none.stderr


def test_a_folder_of_an_older_version_warns_and_a_part_cut_short_is_moved_aside(images, tmp_path, caplog):
    out = tmp_path / "out"
    run_batch(str(images / "maksssksksss0.jpg"), out, "local", threads=2)
    (out / "_batch.json").unlink()  # as an older version left it
    (out / "part-20260101-000000-000000-ray-cut.parquet").write_bytes(b"PAR1 cut short")  # an interrupted write
    with caplog.at_level("WARNING"):
        again = run_batch(str(images / "maksssksksss1.jpg"), out, "local", threads=2)
    assert "did not record its settings" in caplog.text and "moved aside" in caplog.text
    assert again.rows == 2 and (out / "_unreadable-part-20260101-000000-000000-ray-cut.parquet.broken").exists()
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 2  # readers of the folder skip what was moved aside
    caplog.clear()
    with caplog.at_level("WARNING"):
        run_batch(str(images / "maksssksksss1.jpg"), out, "local", threads=2)
    assert "moved aside" not in caplog.text and len(list(out.glob("_unreadable-*"))) == 1  # once is enough


def test_two_runs_on_one_folder_are_not_allowed_at_once(images, tmp_path):
    from maskwatch.batch.core import folder_lock

    with folder_lock(tmp_path / "out"):  # another run holds the folder
        with pytest.raises(MaskwatchError, match=r"another `maskwatch batch` \(pid \d+\) is writing there"):
            run_batch(str(images), tmp_path / "out", "local", threads=2)
    assert run_batch(str(images / "maksssksksss0.jpg"), tmp_path / "out", "local", threads=2).processed == 1


def sigterm_batch(folder: Path, out: Path, *options: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
    """Run `maskwatch batch` and send it SIGTERM (as a service manager or `kill` does) once its first part is on
    disk: rows are done, and (767 images) many are not."""
    run = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "batch", str(folder), "--out", str(out), *options],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout_s
    while not list(out.glob("part-*.parquet")) and run.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert run.poll() is None, "the batch ended before it could be stopped"
    run.terminate()
    stdout, stderr = run.communicate(timeout=120)
    return subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)


def test_sigterm_keeps_the_rows_done_and_exits_130(data_dir, tmp_path):
    stopped = sigterm_batch(data_dir / "images", tmp_path / "out", "--threads", "2")
    kept = len(read_results(tmp_path / "out"))
    assert stopped.returncode == 130 and "interrupted: the" in stopped.stderr and "Traceback" not in stopped.stderr
    assert 0 < kept < 767 and f"the {kept} rows in" in stopped.stderr


def test_results_of_older_versions_with_an_untyped_error_column_are_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = {"path": "/a.jpg", "width": 4, "height": 3, "detections": "[]", "faces": 0, "with_mask": 0,
           "without_mask": 0, "mask_weared_incorrect": 0, "error": None}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "part-0.parquet")  # error: type null
    pq.write_table(pa.Table.from_pylist([{**row, "path": "/b.jpg", "error": "bad"}]), tmp_path / "part-1.parquet")
    assert read_results(tmp_path).column("error").to_pylist() == [None, "bad"]
    with pytest.raises(MaskwatchError, match="no such results folder"):  # (a mistyped path read as no results)
        read_results(tmp_path / "outt")


def test_a_folder_begun_by_an_older_version_gets_one_schema_and_its_rows_are_not_called_gone(images, tmp_path,
                                                                                          caplog):
    """Parts of the previous version lack file_size and file_mtime_ns: a reader of the whole folder (pyarrow, pandas)
    took the first part's schema and dropped the new columns; and its rows record no file, so they are not checked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    out.mkdir()
    old = {"path": "relative/a.jpg", "width": 4, "height": 3, "detections": "[]", "faces": 0, "with_mask": 0,
           "without_mask": 0, "mask_weared_incorrect": 0, "error": None, "annotated": None}
    pq.write_table(pa.Table.from_pylist([old]), out / "part-20260101-000000-000000-local-00000.parquet")
    with caplog.at_level("WARNING"):
        run_batch(str(images / "maksssksksss0.jpg"), out, "local", threads=2)
    assert "no longer exist" not in caplog.text  # (a relative path of another folder, not a file gone)
    table = pq.read_table(out)  # any reader of the folder: one schema, the new columns for every row
    assert table.num_rows == 2 and {"file_size", "file_mtime_ns"} <= set(table.schema.names)
    assert sorted(table.column("file_size").to_pylist(), key=str) == sorted(
        [None, (images / "maksssksksss0.jpg").stat().st_size], key=str)


def test_resume_does_not_depend_on_how_the_path_was_typed(images, tmp_path, monkeypatch):
    monkeypatch.chdir(images.parent)
    out = tmp_path / "out"
    first = run_batch(images.name, out, "local", threads=2)
    again = run_batch(str(images), out, "local", threads=2)
    typed_oddly = run_batch(f"./{images.name}/../{images.name}/", out, "local", threads=2)
    assert first.processed == 7
    assert (again.processed, again.skipped) == (2, 5) and (typed_oddly.processed, typed_oddly.skipped) == (2, 5)
    assert len(rows_by_path(out)) == 7


def test_rows_name_linked_images_by_the_link_as_listed(images, tmp_path):
    linked = tmp_path / "linked"  # a data set written by `convert --images symlink` names its images so
    linked.mkdir()
    for n, stem in enumerate(STEMS[:2]):
        (linked / f"photo{n}.jpg").symlink_to(images / f"{stem}.jpg")
    out = tmp_path / "out"
    assert run_batch(linked, out, "local", threads=2).processed == 2
    assert sorted(rows_by_path(out)) == [str(linked / "photo0.jpg"), str(linked / "photo1.jpg")]
    assert run_batch(linked, out, "local", threads=2).skipped == 2


def test_an_empty_input_folder_is_named_as_the_problem(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(MaskwatchError, match="photos: no images"):
        run_batch(str(tmp_path / "photos"), tmp_path / "results", "local")
    cli = subprocess.run([sys.executable, "-m", "maskwatch.cli", "batch", str(tmp_path / "photos"), "--out",
                          str(tmp_path / "results")], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and "photos: no images" in cli.stderr and "results" not in cli.stderr


def test_the_ray_engine_without_ray_installed_says_how_to_install_it(images, tmp_path):
    hide_ray = ("import sys; sys.modules['ray'] = None; from maskwatch.cli import main; "
                f"sys.argv = ['maskwatch', 'batch', {str(images)!r}, '--engine', 'ray', '--out', {str(tmp_path)!r}]; "
                "main()")
    cli = subprocess.run([sys.executable, "-c", hide_ray], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2 and "pip install -e '.[ray]'" in cli.stderr and "Traceback" not in cli.stderr


def test_threads_reach_each_ray_actor(images, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    import maskwatch.batch.ray_engine as ray_engine

    asked = {}
    monkeypatch.setattr(ray_engine, "run_ray", lambda paths, *args, **kwargs: asked.update(kwargs) or len(paths))
    run_batch(str(images), tmp_path / "out", "ray", threads=2)
    assert asked["threads_per_actor"] == 2
    run_batch(str(images), tmp_path / "again", "ray")
    assert asked["threads_per_actor"] == 1  # the default: an actor takes one CPU


@pytest.mark.slow
def test_ray_engine_on_a_local_cluster_gives_the_same_rows_as_local(images, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    local = run_batch(str(images), tmp_path / "local", "local", threads=1)
    growing = tmp_path / "growing"  # a folder that gets a broken image after a first run without errors
    growing.mkdir()
    for name in ("maksssksksss0.jpg", "maksssksksss1.jpg"):
        shutil.copy(images / name, growing)
    shutil.copy(images / "maksssksksss5.jpg", growing / os.fsdecode(b"caf\xe9.jpg"))  # Latin-1: Arrow takes bytes
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # one cluster for all runs below
    try:
        capsys.readouterr()
        on_ray = run_batch(str(images), tmp_path / "ray", "ray", actors=2)
        shown = capsys.readouterr().err  # (Ray Data's own bars are off: without this, nothing for hours)
        assert "detecting (Ray): 100%" in shown and "7/7" in shown
        resumed = run_batch(str(images), tmp_path / "ray", "ray", actors=2)
        clean = run_batch(str(growing), tmp_path / "late", "ray", actors=1, threads=2)  # an actor of 2 CPUs
        (growing / "zz_broken.jpg").write_text("not an image")
        late = run_batch(str(growing), tmp_path / "late", "ray", actors=2)
        from maskwatch.batch.ray_engine import _check_actor_fits

        with pytest.raises(MaskwatchError, match="the cluster's largest node has 2"):  # Ray would wait forever
            _check_actor_fits(3)
    finally:
        ray.shutdown()
    assert local.processed == on_ray.processed == 7 and resumed.processed == 2  # the unreadable two again
    assert all(p.name.startswith("part-") and "-ray-" in p.name for p in (tmp_path / "ray").glob("*.parquet"))
    a, b = rows_by_path(tmp_path / "local"), rows_by_path(tmp_path / "ray")
    assert a.keys() == b.keys()
    for path in a:
        assert a[path]["error"] == b[path]["error"]
        assert json.loads(a[path]["detections"]) == json.loads(b[path]["detections"]), path
    # The first run's part holds no error, the resumed run's does: both read together.
    assert (clean.processed, late.processed, late.skipped) == (3, 1, 3)
    assert error_types(tmp_path / "late") == {"string"} and error_types(tmp_path / "ray") == {"string"}
    rows = rows_by_path(tmp_path / "late")
    assert len(rows) == 4 and "not a readable image" in rows[str(growing / "zz_broken.jpg")]["error"]
    assert rows[str(growing / "caf\\xe9.jpg")]["error"] is None


@pytest.mark.slow
def test_the_ray_engine_writes_blocks_as_they_finish_and_sigterm_keeps_them(data_dir, tmp_path):
    pytest.importorskip("ray")
    stopped = sigterm_batch(data_dir / "images", tmp_path / "out", "--engine", "ray")
    kept = len(read_results(tmp_path / "out"))
    assert stopped.returncode == 130 and "interrupted: the" in stopped.stderr and "Traceback" not in stopped.stderr
    assert 0 < kept < 767  # written while the actors still ran (before, nothing was written until the end)


@pytest.mark.slow
def test_a_killed_ray_driver_leaves_no_ray_process_behind(images, tmp_path):
    pytest.importorskip("ray")
    import psutil

    def command(process) -> str:
        try:
            return " ".join(process.cmdline())
        except psutil.Error:
            return ""

    driver = subprocess.Popen([sys.executable, "-m", "maskwatch.cli", "batch", str(images), "--out",
                               str(tmp_path / "out"), "--engine", "ray", "--actors", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started: dict[int, psutil.Process] = {}
    deadline = time.time() + 180
    while time.time() < deadline and driver.poll() is None:
        for child in psutil.Process(driver.pid).children(recursive=True):
            started.setdefault(child.pid, child)
        commands = " ".join(command(p) for p in started.values())
        if "raylet" in commands and "DashboardAgent" in commands and "RuntimeEnvAgent" in commands:
            break
        time.sleep(0.2)
    assert driver.poll() is None, "the run ended before the Ray agents were seen"
    ray_processes = [p for p in started.values() if "/ray/" in command(p) or "ray::" in command(p)]
    driver.kill()  # SIGKILL: nothing runs in the driver any more
    driver.wait()
    _, alive = psutil.wait_procs(ray_processes, timeout=30)
    assert not alive, [command(p) for p in alive]


def test_the_watchdog_also_stops_cluster_processes_it_never_saw_below_the_driver(tmp_path):
    """The raylet's agents can start and lose their parent between two of the watchdog's looks: they are found by
    the logs they hold in the cluster's session folder, which the watchdog learnt from the GCS's command line."""
    psutil = pytest.importorskip("psutil")
    logs = tmp_path / "ray" / "session_2026-01-01_00-00-00_000000_1" / "logs"
    logs.mkdir(parents=True)
    hold = "import sys, time; f = open(sys.argv[1], 'a'); time.sleep(300)"
    # The driver, and below it a stand-in for the GCS naming the session folder in its command line.
    driver = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); "
                               "time.sleep(300)", sys.executable, "-c", hold, str(logs / "gcs_server.out"),
                               f"--log_dir={logs}"])
    # An agent the watchdog never sees below the driver; a process that has nothing to do with the cluster; and one
    # that is not Ray's but reads a log of the cluster (as `tail -f` would).
    agent = subprocess.Popen([sys.executable, "-c", hold, str(logs / "dashboard_agent.log")])
    bystander = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "other.log")])
    watchdog = subprocess.Popen([sys.executable, "-m", "maskwatch.batch.ray_watchdog", str(driver.pid)],
                                stdin=subprocess.PIPE)
    gcs = reader = None
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not (len(psutil.Process(driver.pid).children()) == 1
                                               and (logs / "gcs_server.out").exists()
                                               and (logs / "dashboard_agent.log").exists()):
            time.sleep(0.1)
        gcs = psutil.Process(driver.pid).children()[0]
        reader = subprocess.Popen([sys.executable, "-c", "import os, time; f = open(os.environ['LOG']); "
                                   "time.sleep(300)"], env={**os.environ, "LOG": str(logs / "gcs_server.out")})
        time.sleep(2)  # several of the watchdog's looks
        driver.kill()
        driver.wait()
        watchdog.stdin.close()  # what the kernel does when the driver dies
        watchdog.wait(timeout=30)
        agent.wait(timeout=10)  # the agent stand-in was stopped too (else TimeoutExpired)
        deadline = time.time() + 10  # the GCS stand-in is no child of ours: gone, or a zombie nobody reaped
        while time.time() < deadline and gcs.is_running() and gcs.status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.1)
        assert not gcs.is_running() or gcs.status() == psutil.STATUS_ZOMBIE
        assert bystander.poll() is None, "a process outside the cluster was stopped"
        assert reader.poll() is None, "a process that only reads the cluster's logs was stopped"
    finally:
        for process in (driver, agent, bystander, reader, watchdog):
            if process is not None:
                process.kill()
        if gcs is not None and gcs.is_running():
            gcs.kill()


def test_the_session_folder_is_read_only_where_ray_names_it():
    from maskwatch.batch.ray_watchdog import session_dirs

    session = "/tmp/ray/session_2026-11-26_22-27-03_163458_27131"
    assert session_dirs([f"--log_dir={session}/logs", f"--session-dir={session}", "--temp-dir=/tmp/ray"]) == {session}
    # A parent folder that happens to be called session_..., Ray's own link to the newest session, a user's path.
    assert session_dirs([f"--session_dir=/home/u/session_tmp{session[8:]}", "--temp-dir=/home/u/session_tmp",
                         "/tmp/ray/session_latest/logs", "/data/ray/session_3/img.jpg"]) == {
        f"/home/u/session_tmp{session[8:]}"}


def test_the_8_bit_model_is_named_as_such_in_the_folder_settings(images, tmp_path):
    out = tmp_path / "out"
    assert run_batch(images, out, "local", threads=2, model="shipped-int8").processed == 7
    assert json.loads((out / "_batch.json").read_text())["model"] == "shipped-int8"
    with pytest.raises(MaskwatchError, match="model 'shipped-int8' there, 'shipped' now"):
        run_batch(images, out, "local", threads=2)


def test_a_model_is_known_by_its_files_not_its_path(images, tmp_path):
    from maskwatch.detector import DEFAULT_HEAD, INT8_SUFFIX

    mine, out, one = tmp_path / "mine", tmp_path / "out", [str(images / "maksssksksss0.jpg")]
    mine.mkdir()
    for file in (DEFAULT_HEAD, DEFAULT_HEAD.with_suffix(".json")):
        shutil.copy(file, mine)
    assert run_batch(one, out, "local", threads=2, model=str(mine)).processed == 1
    # The shipped model by name, or by its folder, is the same files: the folder goes on.
    assert run_batch([str(images / "maksssksksss1.jpg")], out, "local", threads=2).processed == 1
    assert run_batch([str(images / "maksssksksss5.jpg")], out, "local", threads=2,
                     model=str(DEFAULT_HEAD.parent)).processed == 1
    # Another model under the same path (trained again in place) is not the same settings.
    shutil.copy(DEFAULT_HEAD.with_name(DEFAULT_HEAD.stem + INT8_SUFFIX + ".onnx"), mine / DEFAULT_HEAD.name)
    with pytest.raises(MaskwatchError, match=f"model '{DEFAULT_HEAD.parent}' there, '{mine}' now"):
        run_batch(one, out, "local", threads=2, model=str(mine))
    run_batch(one, tmp_path / "again", "local", threads=2, model=str(mine))
    shutil.copy(DEFAULT_HEAD, mine)
    with pytest.raises(MaskwatchError, match=r"model '.*mine': its files changed since \(trained or copied again"):
        run_batch(one, tmp_path / "again", "local", threads=2, model=str(mine))


@pytest.fixture
def ray_cluster():
    """A cluster as `ray start --head` makes one, on loopback: its GCS address. Stopped by its own processes
    (`ray stop` would stop every Ray of this user)."""
    pytest.importorskip("ray")
    import psutil

    from servers import free_port

    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="mw-ray-"))  # short: Ray's socket paths in it must fit 107 characters
    ray = Path(sys.executable).with_name("ray")
    try:
        started = subprocess.run([str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                                  "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                                  f"--temp-dir={temp}"], capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:  # its processes: those named with its folder or GCS port, and what they started
        mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
        ours = [p for p in psutil.process_iter(["cmdline", "uids"])
                if p.pid not in mine and p.info["uids"] and p.info["uids"].real == os.getuid()
                and any(str(temp) in a or f":{port}" in a for a in p.info["cmdline"] or [])]
        family = {p.pid: p for p in ours}
        for process in ours:
            with contextlib.suppress(psutil.Error):
                family.update({child.pid: child for child in process.children(recursive=True)})
        for process in family.values():
            with contextlib.suppress(psutil.Error):
                process.terminate()
        for process in psutil.wait_procs(list(family.values()), timeout=5)[1]:
            with contextlib.suppress(psutil.Error):
                process.kill()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_engine_on_a_cluster_started_apart_and_a_ray_client_address_refused(images, tmp_path, ray_cluster):
    cli = [sys.executable, "-m", "maskwatch.cli", "batch", str(images), "--engine", "ray", "--actors", "1"]
    env = {**os.environ, "RAY_AUTH_MODE": "token"}  # (what `ray start` sets up since Ray 2.59; older: ignored)
    run = subprocess.run([*cli, "--out", str(tmp_path / "cluster"), "--address", ray_cluster], capture_output=True,
                         text=True, timeout=300, env=env)
    assert "7 processed now" in run.stdout, run.stderr
    local = run_batch(str(images), tmp_path / "local", "local", threads=1)
    assert rows_by_path(tmp_path / "cluster").keys() == rows_by_path(tmp_path / "local").keys() and local.processed == 7
    client = subprocess.run([*cli, "--out", str(tmp_path / "client"), "--address", "ray://127.0.0.1:10001"],
                            capture_output=True, text=True, timeout=120)
    assert client.returncode == 2 and "Ray's client (ray://) cannot run Ray Data" in client.stderr
    assert "--address auto" in client.stderr and "Traceback" not in client.stderr
    assert not (tmp_path / "client").exists()  # refused before the results folder was made
    from_env = subprocess.run([*cli, "--out", str(tmp_path / "env")], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "RAY_ADDRESS": "ray://127.0.0.1:10001"})
    assert from_env.returncode == 2 and "RAY_ADDRESS ray://127.0.0.1:10001: Ray's client" in from_env.stderr


def test_the_local_engine_also_writes_a_part_when_time_has_passed(images, tmp_path, detector):
    from maskwatch.batch.local import run_local

    paths = [str(images / f"{stem}.jpg") for stem in STEMS[:3]]
    assert run_local(paths, tmp_path / "slow", detector, 0.4, None, every_s=0.0) == 3  # as if each took long
    assert len(list((tmp_path / "slow").glob("*.parquet"))) == 3 and len(rows_by_path(tmp_path / "slow")) == 3
    assert run_local(paths, tmp_path / "fast", detector, 0.4, None) == 3
    assert len(list((tmp_path / "fast").glob("*.parquet"))) == 1
