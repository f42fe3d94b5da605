from __future__ import annotations

from pathlib import Path

from maskwatch.data import load_dataset
from maskwatch.data.split import read_list, split_dataset
from maskwatch.data.stats import dataset_stats, plot_stats

# The duplicate groups the data set's README lists.
KNOWN_DUPLICATES = [(13, 737), (146, 219), (410, 428), (656, 690), (61, 451), (74, 354), (87, 485), (156, 545),
                    (302, 579), (327, 699), (435, 554), (514, 680), (665, 704)]


def test_split_is_deterministic_stratified_and_keeps_duplicates_together(data_dir, tmp_path):
    ds = load_dataset(data_dir)
    split = split_dataset(ds, 0.15, seed=0)
    assert split == split_dataset(ds, 0.15, seed=0)
    assert split != split_dataset(ds, 0.15, seed=1)
    assert set(split.train).isdisjoint(split.val) and len(split.train) + len(split.val) == 767
    assert 0.12 <= len(split.val) / 767 <= 0.18
    for side in (split.train, split.val):
        assert all(count > 0 for count in ds.subset(side).class_counts().values())
    val = set(split.val)
    for a, b in KNOWN_DUPLICATES:
        assert (f"maksssksksss{a}" in val) == (f"maksssksksss{b}" in val), (a, b)
    train_path, val_path = split.write(tmp_path)
    assert read_list(val_path) == split.val and read_list(train_path) == split.train


def test_committed_split_is_what_the_command_gives(data_dir):
    committed = Path(__file__).resolve().parents[1] / "splits" / "face-mask-voc" / "val.txt"
    assert read_list(committed) == split_dataset(load_dataset(data_dir), 0.15, seed=0).val


def test_stats_count_per_class_and_write_a_figure(data_dir, tmp_path):
    stats = dataset_stats(load_dataset(data_dir))
    assert stats.boxes_per_class == {"with_mask": 2922, "without_mask": 666, "mask_weared_incorrect": 113}
    assert stats.images_per_class == {"with_mask": 692, "without_mask": 262, "mask_weared_incorrect": 87}
    assert stats.as_dict()["box_width_px"]["with_mask"]["median"] == 23
    png = plot_stats(stats, tmp_path / "stats.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_what_a_small_data_set_cannot_give_is_said(small_voc, caplog):
    import logging

    from maskwatch.data import load_dataset
    from maskwatch.data.split import split_dataset

    dataset = load_dataset(small_voc)
    with caplog.at_level(logging.WARNING):
        split_dataset(dataset, 0.99)
    assert "the train side is empty" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        split_dataset(dataset.subset(["maksssksksss0", "maksssksksss139"]), 0.5)  # the rare class in one image
    assert "side has no box of mask_weared_incorrect" in caplog.text


def test_a_list_made_of_notepad_files_joined_reads_every_name(tmp_path):
    """Two Notepad lists joined with `cat`: the second's byte-order mark began a name, refused as not an image."""
    joined = tmp_path / "val.txt"
    joined.write_bytes(b"\xef\xbb\xbfmaksssksksss1.jpg\r\n" + b"\xef\xbb\xbfmaksssksksss2.jpg\r\n")
    assert read_list(joined) == ["maksssksksss1", "maksssksksss2"]
