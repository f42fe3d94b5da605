"""The one input collector of `detect` and `batch`: folders, images, list files, globs, a names filter, and output
names that never collide."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from maskwatch.data.inputs import collect_images, copy_names, output_names
from maskwatch.errors import MaskwatchError


@pytest.fixture
def folders(tmp_path, data_dir) -> Path:
    for folder, stems in (("a", ["maksssksksss0", "maksssksksss1"]), ("b/deep", ["maksssksksss5"])):
        (tmp_path / folder).mkdir(parents=True)
        for stem in stems:
            shutil.copy(data_dir / "images" / f"{stem}.jpg", tmp_path / folder)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    return tmp_path


def test_folders_images_lists_and_globs_in_order_without_repeats(folders, monkeypatch):
    monkeypatch.chdir(folders)
    listing = folders / "b" / "list.txt"
    # a comment, a path relative to the current folder, one relative to the list file, a blank line
    listing.write_text("# my photos\na/maksssksksss1.jpg\n\ndeep/maksssksksss5.jpg\n")
    found = collect_images(["a", "b/list.txt", "a/maksssksksss0.jpg", "b/**/*.jpg"])
    assert [p.as_posix() for p in found] == ["a/maksssksksss0.jpg", "a/maksssksksss1.jpg",
                                             "b/deep/maksssksksss5.jpg"]
    with pytest.raises(MaskwatchError, match="no such file or folder"):
        collect_images(["missing.jpg"])
    with pytest.raises(MaskwatchError, match="no files match"):
        collect_images(["a/*.png"])
    with pytest.raises(MaskwatchError, match="an empty input"):  # not the current folder, searched whole
        collect_images(["a", ""])
    (folders / "tf").mkdir()
    (folders / "tf" / "train.record").write_bytes(b"")  # TF's object detection API names its records .record
    with pytest.raises(MaskwatchError, match="holds TFRecord files, which embed their images"):
        collect_images(["tf"])


def test_a_glob_of_a_suffix_matches_it_in_any_case_as_folders_are_read(folders, monkeypatch):
    """'archive/**/*.jpg' left a camera's .JPG files out without a word, while a folder given whole reads them."""
    monkeypatch.chdir(folders)
    (folders / "a" / "maksssksksss1.jpg").rename(folders / "a" / "IMG_0001.JPG")
    (folders / "b" / "deep" / "maksssksksss5.jpg").rename(folders / "b" / "deep" / "IMG_0002.Jpeg")
    assert [p.as_posix() for p in collect_images(["**/*.jpg"])] == ["a/IMG_0001.JPG", "a/maksssksksss0.jpg"]
    assert [p.as_posix() for p in collect_images(["b/**/*.JPEG"])] == ["b/deep/IMG_0002.Jpeg"]
    assert len(collect_images(["a"])) == 2


def test_pictures_in_formats_not_read_are_named_and_other_files_are_not(folders, caplog):
    (folders / "a" / "party.gif").write_bytes(b"GIF89a")
    (folders / "a" / "annotations.xml").write_text("<annotation/>")
    with caplog.at_level("WARNING"):
        found = collect_images([folders / "a"])
    assert [p.name for p in found] == ["maksssksksss0.jpg", "maksssksksss1.jpg"]
    assert "party.gif" in caplog.text and "notes.txt" not in caplog.text and "annotations.xml" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert len(collect_images([str(folders / "a" / "*")])) == 2  # a glob names them too
    assert "party.gif" in caplog.text


def test_links_to_missing_files_are_named_by_their_own_name_and_skipped(folders, caplog):
    (folders / "a" / "gone.jpg").symlink_to(folders / "nowhere" / "photo.jpg")
    (folders / "a" / "alias.jpg").symlink_to(folders / "a" / "maksssksksss1.jpg")  # a link that works is an input
    for spec in (folders / "a", str(folders / "a" / "*.jpg")):
        caplog.clear()
        with caplog.at_level("WARNING"):
            found = collect_images([spec])
        assert [p.name for p in found] == ["maksssksksss0.jpg", "maksssksksss1.jpg"]  # one row per file: its own name
        assert "(e.g. " in caplog.text and "maksssksksss1.jpg, not " in caplog.text and "alias.jpg)" in caplog.text
        assert "1 link(s) to a missing file skipped" in caplog.text and "gone.jpg" in caplog.text
        assert "nowhere" not in caplog.text


def test_a_glob_through_a_linked_folder_that_leads_back_up_takes_each_file_once_by_its_own_name(folders, caplog):
    (folders / "b" / "deep" / "up").symlink_to(folders / "b")  # '**' follows it round, 40 levels deep
    found = collect_images([str(folders / "b" / "**" / "*.jpg")])
    assert found == [folders / "b" / "deep" / "maksssksksss5.jpg"]
    assert "1 file(s) reached by more than one path, through links" in caplog.text


def test_a_names_file_keeps_only_the_listed_images(folders, caplog):
    names = folders / "val.txt"
    names.write_text("maksssksksss5\nmaksssksksss1.jpg\nmaksssksksss999\n")  # stems, a file name, an unknown
    found = collect_images([folders / "a", folders / "b"], only=names)
    assert sorted(p.name for p in found) == ["maksssksksss1.jpg", "maksssksksss5.jpg"]
    names.write_text("maksssksksss999\n")
    with pytest.raises(MaskwatchError, match="none of its 1 names"):
        collect_images([folders / "a"], only=names)
    shutil.copy(folders / "a" / "maksssksksss1.jpg", folders / "b" / "maksssksksss1.jpg")  # one name, two folders
    names.write_text("b/maksssksksss1.jpg\n")  # a path names that file alone, not every file of its name
    assert collect_images([folders], only=names) == [folders / "b" / "maksssksksss1.jpg"]
    names.write_text(f"{folders / 'a' / 'maksssksksss1.jpg'}\nmaksssksksss5\n")  # an absolute path, a stem
    assert sorted(collect_images([folders], only=names)) == [folders / "a" / "maksssksksss1.jpg",
                                                             folders / "b" / "deep" / "maksssksksss5.jpg"]
    names.write_text("/another/machine/maksssksksss5.jpg\n./maksssksksss0.jpg\n")  # no input's path: by name
    assert sorted(collect_images([folders], only=names)) == [folders / "a" / "maksssksksss0.jpg",
                                                             folders / "b" / "deep" / "maksssksksss5.jpg"]
    names.write_text("maksssksksss1.jpg\nb/maksssksksss1.jpg\n")  # both name files there: none said missing
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert len(collect_images([folders], only=names)) == 2
    assert "not among the inputs" not in caplog.text


def test_output_names_are_file_names_unless_two_inputs_share_one():
    paths = [Path("/x/a/img.jpg"), Path("/x/b/img.jpg"), Path("/x/b/other.jpg"), Path("/y/a/img.png"),
             Path("/z/a/img.png")]
    assert output_names(paths) == ["a/img.jpg", "b/img.jpg", "other.jpg", "y/a/img.png", "z/a/img.png"]


def test_no_two_annotated_copies_share_a_name_and_a_copy_under_its_own_name_keeps_it(caplog):
    from maskwatch.data.images import annotated_copy_name

    names = ["x.heic", "x.heic.jpg", "x-2.heic", "a/y.jfif", "a/y.jfif.jpg", "b/y.jfif"]
    renamed = copy_names(names)
    assert renamed == ["x-3.heic", "x.heic.jpg", "x-2.heic", "a/y-2.jfif", "a/y.jfif.jpg", "b/y.jfif"]
    assert len({annotated_copy_name(name) for name in renamed}) == len(names)
    assert "the annotated copy of x.heic is x-3.heic.jpg: x.heic.jpg is another input's copy" in caplog.text
    assert copy_names(["a.jpg", "b.heic"]) == ["a.jpg", "b.heic"]
    assert copy_names(["IMG_1.HEIC", "IMG_1.heic.jpg"]) == ["IMG_1-2.HEIC", "IMG_1.heic.jpg"]  # one file on macOS


def test_without_pillow_heif_heic_photos_are_named_with_the_command_that_reads_them(tmp_path):
    import subprocess
    import sys

    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    shutil.copy(Path(__file__).parent.parent / "src" / "maskwatch" / "samples" / "crowd.jpg", tmp_path)
    code = ("import logging, sys; logging.basicConfig(); sys.modules['pillow_heif'] = None; "  # (warnings shown)
            "from maskwatch.data.inputs import collect_images; "
            f"print([p.name for p in collect_images([{str(tmp_path)!r}])])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "['crowd.jpg']" and "IMG_0001.HEIC" in run.stderr
    assert "pip install -e '.[heic]'" in run.stderr


def test_linked_folders_are_searched_once_and_jfif_photos_are_found(folders):
    (folders / "b" / "more").symlink_to(folders / "a", target_is_directory=True)  # a linked folder of photos
    (folders / "a" / "up").symlink_to(folders, target_is_directory=True)  # a link to a parent: no endless search
    (folders / "b" / "latest").symlink_to(folders / "b" / "deep", target_is_directory=True)  # inside: real name
    (folders / "b" / "all").symlink_to(folders, target_is_directory=True)  # the folder's parent: not searched
    shutil.copy(folders / "a" / "maksssksksss0.jpg", folders / "b" / "scan.JFIF")
    found = collect_images([folders / "b"])
    assert [p.relative_to(folders / "b").as_posix() for p in found] == [
        "deep/maksssksksss5.jpg", "more/maksssksksss0.jpg", "more/maksssksksss1.jpg", "scan.JFIF"]
