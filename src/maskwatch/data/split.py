"""A deterministic validation split: stratified so every class sits on both sides, grouped so that duplicate
and near-duplicate images (perceptual hash) never straddle it."""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

import imagehash
from PIL import Image

from maskwatch.data.coco import ROBOFLOW_FILE, coco_side_stems, side_file
from maskwatch.data.dataset import Dataset, Split, read_text_file  # (Split: the result of split_dataset)
from maskwatch.data.voc import SIDE_LISTS
from maskwatch.data.yolo import DATA_YAML
from maskwatch.errors import MaskwatchError, name_some

log = logging.getLogger(__name__)

# Hamming distance (64-bit hashes) at or below which two images count as the same photo. pHash alone misses
# re-encoded copies with shifted colours (87~485 in the mask data: pHash 12, dHash 3), so either hash may match.
NEAR_DUPLICATE_DISTANCE = 6
# The share of images validated on where nobody chose one (`data split --val`, `train` without a val side).
VAL_FRACTION = 0.15


def read_list(path: Path) -> list[str]:
    """Stems from a split list file (file names or paths are accepted too)."""
    if not path.is_file():
        raise MaskwatchError(f"{path}: no such split file")
    from maskwatch.data.images import stem_of

    return [stem_of(line) for line in read_text_file(path).splitlines() if line.strip()]


def yolo_side(data: Path, side: str) -> list[str] | None:
    """The stems of a side ("val", "test") a YOLO data.yaml names as an image folder or a list file, as
    Ultralytics reads it: relative to the file's folder, and Roboflow's `../valid/images` also as `valid/images`
    (its exports write one folder per side beside data.yaml). None where it names none, or the whole set."""
    import yaml

    from maskwatch.data.images import list_images, stem_of

    try:
        config = yaml.safe_load(read_text_file(data / DATA_YAML))
    except (OSError, yaml.YAMLError, MaskwatchError):
        return None
    entries = config.get(side) if isinstance(config, dict) else None
    stems: list[str] = []
    for entry in [entries] if isinstance(entries, str) else entries if isinstance(entries, list) else []:
        entry = str(entry)
        place = next((p for p in (data / entry, data / entry.removeprefix("../")) if p.exists()), None)
        if place is None or place.resolve() in ((data / "images").resolve(), data.resolve()):
            continue  # missing, or the whole set (convert without --val writes `val: images`)
        stems += read_list(place) if place.is_file() else [stem_of(p.name) for p in list_images(place)]
    return stems or None


def declared_val_side(data: Path) -> tuple[Path, list[str]] | None:
    """The validation side a data set folder names itself, as `convert --val` writes it (VOC
    ImageSets/Main/val.txt, YOLO val.txt, COCO instances_val.json, TFRecord val.tfrecord beside train.tfrecord)
    or as a YOLO data.yaml names it (a Roboflow export's valid/ folder): the file and the stems it names, or None."""
    import json

    from maskwatch.data.tfrecord import record_side_stems

    if not data.is_dir():
        return None
    for listed in (data / SIDE_LISTS / "val.txt", data / "val.txt"):
        if listed.is_file():
            return listed, read_list(listed)
    if (data / DATA_YAML).is_file() and (stems := yolo_side(data, "val")):
        return data / DATA_YAML, stems
    for side in ("valid", "val"):  # a Roboflow-style COCO export's valid/_annotations.coco.json
        if (stems := coco_side_stems(data, side)) is not None:
            return data / side / ROBOFLOW_FILE, stems
    if (records := record_side_stems(data, "val")) is not None:
        return records
    for coco in (data / side_file("val"), data / "annotations" / side_file("val")):
        # Only beside the whole set's annotations.json (as convert writes it): in the COCO layout of
        # instances_train.json + instances_val.json the set read is the train file, and val is another set.
        if coco.is_file() and (coco.parent / "annotations.json").is_file():
            try:
                return coco, [Path(str(im["file_name"])).stem for im in json.loads(coco.read_text())["images"]]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise MaskwatchError(f"{coco}: not a valid COCO file ({exc})") from exc
    return None


def usable_declared_side(dataset: Dataset, data: Path,
                         instead: str = f"train does not validate on it (a {VAL_FRACTION:.0%} split instead)"
                         ) -> tuple[Path, set[str]] | None:
    """The validation side the data set folder names, if it splits this data set (some images on each side);
    a list that does not (a stray val.txt, another set's list) is said, with what is done `instead`."""
    declared = declared_val_side(data)
    if declared is None:
        return None
    listed, stems = declared
    val = set(stems) & {s.stem for s in dataset.samples}
    if not val or len(val) == len(dataset):
        log.warning("%s names %s of the data set's %d images as validation; %s", listed, "all" if val else "none",
                    len(dataset), instead)
        return None
    return listed, val


def declared_test_side(dataset: Dataset, data: Path) -> tuple[set[str], Path]:
    """The images of `dataset` on the test side its YOLO data.yaml names, or its test/_annotations.coco.json holds
    (a Roboflow export's test/ folder, either format), and the file that names them (an empty set: none)."""
    if (data / DATA_YAML).is_file():
        test, named_by = set(yolo_side(data, "test") or []), data / DATA_YAML
    else:
        test, named_by = set(coco_side_stems(data, "test") or []), data / "test" / ROBOFLOW_FILE
    return test & {s.stem for s in dataset.samples}, named_by


def without_test_side(dataset: Dataset, data: Path) -> Dataset:
    """The data set less its declared test side (`declared_test_side`), said when there is one: a test set is
    neither learnt from nor chosen on, by `train` and `data split` alike."""
    test, named_by = declared_test_side(dataset, data)
    if not test:
        return dataset
    print(f"leaving out the {len(test)} test image(s) {named_by} names")
    return dataset.subset([s.stem for s in dataset.samples if s.stem not in test])


def listed_names(dataset: Dataset, list_path: Path) -> list[str]:
    """The images a list file names (as `data split` writes it), each checked to be in `dataset`: a list of
    another data set, or of images since removed, would otherwise choose fewer images without a word."""
    named = read_list(list_path)
    if not named:
        raise MaskwatchError(f"{list_path}: no image names in it (an empty file?); nothing to use")
    stems = {s.stem for s in dataset.samples}
    missing = sorted(set(named) - stems)
    left_out = named_in_problems(dataset, missing)
    unknown = [name for name in missing if name not in left_out]
    if unknown:
        what = (f"none of its {len(set(named))} names is an image of the data set" if len(unknown) == len(set(named))
                else f"{len(unknown)} of its {len(set(named))} names are not images of the data set")
        raise MaskwatchError(f"{list_path}: {what} ({name_some(unknown, 3)}): is it the list of another data set, "
                             f"or were those images removed? (`maskwatch data split` writes a list of this one)")
    kept = [name for name in named if name not in left_out]
    if left_out:
        if not kept:
            raise MaskwatchError(f"{list_path}: every one of its {len(set(named))} names is an image left out as the "
                                 f"data set was read ({name_some(sorted(left_out), 3)}: `maskwatch data stats` "
                                 f"says why); nothing to use")
        log.warning("%s: %d of its names are images left out as the data set was read (%s: `maskwatch data stats` "
                    "says why); the other %d are used", list_path, len(left_out), name_some(sorted(left_out), 3),
                    len(set(kept)))
    return kept


FILE_NAMES = re.compile(r"[^\s'\"()]+\.[A-Za-z0-9]+")  # a path or file name in a message: x.xml, images/x.jpg


def named_in_problems(dataset: Dataset, names: list[str]) -> set[str]:
    """Which of `names` (image stems) the load's problems name as files (`x.xml`, `images/x.jpg`: the stem of the
    file a message names, compared whole): images left out for a reason already said (a broken annotation, a
    damaged image), not images of another data set."""
    wanted = set(names)
    if not wanted or not dataset.problems:
        return set()
    stems = {re.split(r"[/\\]", token)[-1].rsplit(".", 1)[0]
             for problem in dataset.problems for token in FILE_NAMES.findall(problem)}
    return wanted & stems


def split_around(dataset: Dataset, val: set[str]) -> Split:
    """Validation = the images `val` names (stems), training = the rest, each in the data set's order."""
    stems = [s.stem for s in dataset.samples]
    return Split(train=[s for s in stems if s not in val], val=[s for s in stems if s in val])


def split_from_list(dataset: Dataset, val_list: Path) -> Split:
    """Validation = the images named in a list file (as `data split` writes it), training = the rest."""
    return split_around(dataset, set(listed_names(dataset, val_list)))


def duplicate_groups(dataset: Dataset, max_distance: int = NEAR_DUPLICATE_DISTANCE) -> list[list[int]]:
    """Indices of samples grouped by near-identical pixels (union-find over pHash distance)."""
    hashes, unreadable = [], []
    for sample in dataset.samples:
        try:
            with Image.open(sample.image_path) as im:
                rgb = im.convert("RGB")
                hashes.append((imagehash.phash(rgb), imagehash.dhash(rgb)))
        except Exception as exc:  # truncated or corrupt (Pillow's OSError, UnidentifiedImageError): a group alone
            unreadable.append(f"{sample.image_path.name} ({type(exc).__name__}: {exc})")
            hashes.append(None)
    if unreadable:
        log.warning("%d image(s) cannot be read, so they are not compared for duplicates (each is a group of its "
                    "own): %s", len(unreadable), name_some(unreadable, 3))
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            if hashes[i] is None or hashes[j] is None:
                continue
            (p_i, d_i), (p_j, d_j) = hashes[i], hashes[j]
            if p_i - p_j <= max_distance or d_i - d_j <= max_distance:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(hashes)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def check_val_fraction(val_fraction: float) -> float:
    """The share of images for validation, refused unless strictly between 0 and 1 (before any data is read)."""
    if not 0 < val_fraction < 1:
        raise MaskwatchError(f"--val must be between 0 and 1 (e.g. 0.15), got {val_fraction}")
    return val_fraction


def split_dataset(dataset: Dataset, val_fraction: float = VAL_FRACTION, seed: int = 0) -> Split:
    """Walk groups from the rarest class they hold to the commonest, sending a group to validation while
    validation still lacks its share of images of that class. What a small data set cannot give (a side without
    images, a class on one side only, a share far from the one asked for) is said."""
    check_val_fraction(val_fraction)
    groups = duplicate_groups(dataset)
    n_classes = len(dataset.classes)
    images_with = [0] * n_classes
    group_classes = []
    for group in groups:
        present = {int(c) for i in group for c in dataset.samples[i].detections.class_id}
        group_classes.append(present)
        for c in present:
            images_with[c] += len(group)
    rng = random.Random(seed)
    order = list(range(len(groups)))
    rng.shuffle(order)

    def rarity(g: int) -> int:
        present = group_classes[g]
        return min((images_with[c] for c in present), default=10**9)

    order.sort(key=rarity)  # stable: shuffled within equal rarity
    want_images = val_fraction * len(dataset)
    val_with = [0] * n_classes
    val_images = 0
    val_groups: set[int] = set()
    for g in order:
        present = group_classes[g]
        rarest = min(present, key=lambda c: images_with[c]) if present else None
        short_of_class = rarest is not None and val_with[rarest] < val_fraction * images_with[rarest]
        short_of_images = val_images < want_images
        if short_of_class and short_of_images or (rarest is None and short_of_images):
            val_groups.add(g)
            val_images += len(groups[g])
            for c in present:
                val_with[c] += len(groups[g])
    stems = [s.stem for s in dataset.samples]
    val = sorted(stems[i] for g in val_groups for i in groups[g])
    train = sorted(stems[i] for g in range(len(groups)) if g not in val_groups for i in groups[g])
    _warn_about(Split(train=train, val=val), dataset, val_fraction)
    return Split(train=train, val=val)


def _warn_about(split: Split, dataset: Dataset, val_fraction: float) -> None:
    for name, side in split.parts(dataset):
        if not len(side):
            log.warning("the %s side is empty (%d images, a validation share of %g): annotate more images or "
                        "choose another share", name, len(dataset), val_fraction)
            return
    counts = dataset.class_counts()
    for name, side in split.parts(dataset):
        missing = [c for c, n in side.class_counts().items() if not n and counts[c]]
        if missing:
            log.warning("the %s side has no box of %s (too few images of it to share: see `data stats`)", name,
                        ", ".join(missing))
    share = len(split.val) / len(dataset)
    if abs(share - val_fraction) > max(0.05, 1.5 / len(dataset)):
        log.warning("validation got %d of %d images (%.0f %%, asked %g): duplicate photos stay together and each "
                    "class gets its share", len(split.val), len(dataset), 100 * share, val_fraction)


def k_folds(dataset: Dataset, k: int = 5, seed: int = 0) -> list[Split]:
    """K cross-validation splits: duplicate groups never straddle a fold, and the images of each class are spread
    evenly (groups are dealt from the rarest class they hold to the commonest, each to the fold that has the
    fewest images of that class so far). Decisions on a rare class rest on all its faces, not on one split's few."""
    if not 2 <= k <= len(dataset):
        raise MaskwatchError(f"k-fold needs 2 <= k <= {len(dataset)} images, got {k}")
    groups = duplicate_groups(dataset)
    group_classes = [{int(c) for i in group for c in dataset.samples[i].detections.class_id} for group in groups]
    images_with = [sum(len(g) for g, present in zip(groups, group_classes) if c in present)
                   for c in range(len(dataset.classes))]
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: min((images_with[c] for c in group_classes[g]), default=10**9))
    fold_images, fold_with = [0] * k, [[0] * len(dataset.classes) for _ in range(k)]
    assigned: list[list[int]] = [[] for _ in range(k)]
    for g in order:
        present = group_classes[g]
        rarest = min(present, key=lambda c: images_with[c]) if present else None
        fold = min(range(k), key=lambda f: ((fold_with[f][rarest] if rarest is not None else 0), fold_images[f]))
        assigned[fold].append(g)
        fold_images[fold] += len(groups[g])
        for c in present:
            fold_with[fold][c] += len(groups[g])
    stems = [s.stem for s in dataset.samples]
    splits = []
    for fold in range(k):
        val = sorted(stems[i] for g in assigned[fold] for i in groups[g])
        held = set(val)
        splits.append(Split(train=sorted(s for s in stems if s not in held), val=val))
    return splits
