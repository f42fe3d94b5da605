"""The one in-memory dataset type: image paths with their boxes, labels and the class list.

Readers of every format build a `Dataset` through `DatasetBuilder`, which owns the checks a user's data needs
(clip boxes that end past the edge, drop zero-size and non-finite boxes, reject or rename unknown labels, warn
about labels that differ only in spelling, skip missing images and images outside the data set), so each format
module only parses.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import re
import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import supervision as sv

from maskwatch.classes import DROP_LABEL, MASK_CLASSES, TWO_CLASSES, label_map_hint, likely_mask_class, meaning_of
from maskwatch.data.images import ImageHeader, image_header, pixel_damage, stem_of
from maskwatch.errors import MaskwatchError, name_some

log = logging.getLogger(__name__)
# detections.data key of the boxes marked hard to judge (VOC <difficult>1, COCO iscrowd 1, the TF OD API's
# image/object/difficult): kept through every conversion that can say so, and neither found nor missed in scoring.
DIFFICULT = "difficult"


@dataclass
class Sample:
    """One annotated image: where it is, its size, and its faces as `sv.Detections` (xyxy pixels, class_id)."""

    image_path: Path
    width: int
    height: int
    detections: sv.Detections
    orientation: int = 1  # the image's EXIF orientation (1: stored upright); boxes are in the stored pixels
    # Boxes `--label-map OLD=` left out (xyxy pixels): what they hold (a face shield, a helmet, a person) is
    # still in the picture, so they are regions to ignore, as COCO's crowd boxes are: training takes no
    # background example from them, and scoring counts a box found on one neither right nor wrong.
    left_out: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32), compare=False)

    @property
    def stem(self) -> str:
        return self.image_path.stem

    def __repr__(self) -> str:  # the boxes' arrays would fill a notebook
        return f"Sample({self.image_path.name!r}, {self.width}x{self.height}, {len(self.detections)} boxes)"


@dataclass
class Dataset:
    """Annotated images of any of the formats, read into one form: the classes, a Sample per image (boxes, labels,
    difficult marks) and the problems met while reading (each said where it was met)."""

    classes: list[str]
    samples: list[Sample]
    problems: list[str] = field(default_factory=list)
    labels_read: frozenset[str] = frozenset()  # the labels as the files spell them, before --label-map

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (f"Dataset({len(self.samples)} images, {self.num_boxes} boxes, classes {self.classes}"
                + (f", {len(self.problems)} problems" if self.problems else "") + ")")

    @property
    def num_boxes(self) -> int:
        return sum(len(s.detections) for s in self.samples)

    @property
    def turned_images(self) -> set[Path]:
        """Images with an EXIF rotation (their boxes are in the stored pixels): what writers must not leave turned."""
        return {s.image_path for s in self.samples if s.orientation != 1}

    @property
    def num_difficult(self) -> int:
        return sum(int(difficult_of(s.detections).sum()) for s in self.samples)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(int(c) for s in self.samples for c in s.detections.class_id)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def labels_of(self, sample: Sample) -> list[str]:
        return [self.classes[int(c)] for c in sample.detections.class_id]

    def without_damaged_images(self) -> "Dataset":
        """The data set less the images whose pixel data is damaged (a JPEG cut short or broken, a PNG with a bad
        chunk), each named in `problems`: a load reads headers only, so `data stats` and `convert` look at the
        pixels too (less than a decode per image: data.images.pixel_damage) rather than count or copy a picture
        nothing can read."""
        from tqdm import tqdm

        damaged = {}
        for sample in tqdm(self.samples, desc="checking images", unit="img", disable=len(self.samples) < 200):
            try:
                damage = pixel_damage(sample.image_path.read_bytes())
            except OSError as exc:
                damage = exc.strerror or str(exc)
            if damage:
                damaged[sample.stem] = f"{sample.image_path}: its pixel data is damaged ({damage}); skipped"
        for problem in damaged.values():
            log.warning(problem)
        return replace(self, samples=[s for s in self.samples if s.stem not in damaged],
                       problems=[*self.problems, *damaged.values()])

    def subset(self, stems: set[str] | list[str]) -> "Dataset":
        """The samples named by stem (file names and paths are taken too, as in split lists)."""
        wanted = {stem_of(name) for name in stems} | {str(name) for name in stems}  # (x.jpg.png's stem is x.jpg)
        return replace(self, samples=[s for s in self.samples if s.stem in wanted], problems=list(self.problems))

    def with_classes(self, classes: list[str]) -> "Dataset":
        """The same faces under a longer class list (ids re-indexed): a small or filtered mask data set that lacks
        a class is still scored against predictions of all three."""
        missing = [c for c in self.classes if c not in classes]
        if missing:
            raise ValueError(f"classes {missing} are not in {classes}")
        remap = np.array([classes.index(c) for c in self.classes], dtype=int)
        samples = []
        for sample in self.samples:
            detections = copy.deepcopy(sample.detections)
            if len(detections):
                detections.class_id = remap[detections.class_id]
            samples.append(replace(sample, detections=detections))
        return replace(self, classes=list(classes), samples=samples, problems=list(self.problems))


@dataclass
class Split:
    """Two sides of a data set by image stem: what `data split` writes and `train` validates on."""

    train: list[str]
    val: list[str]

    def parts(self, dataset: Dataset) -> list[tuple[str, Dataset]]:
        """("train", ...), ("val", ...): the two sides as data sets, for writers that store them apart."""
        return [("train", dataset.subset(self.train)), ("val", dataset.subset(self.val))]

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = out_dir / "train.txt", out_dir / "val.txt"
        for path, stems in zip(paths, (self.train, self.val)):
            path.write_text("".join(s + "\n" for s in stems))
        return paths


def format_pixel(value: float) -> str:
    """Pixel coordinates as text: integers stay integers (VOC's habit), others keep 3 decimals."""
    value = float(value)
    return str(int(round(value))) if abs(value - round(value)) < 1e-3 else f"{value:.3f}".rstrip("0")


def from_normalised(value: float, size: int) -> float:
    """Undo a 0..1 coordinate; rounding to 1/1000 px removes float32 noise so integer boxes come back exact."""
    return round(float(value) * size, 3)


def difficult_of(detections: sv.Detections) -> np.ndarray:
    """Which boxes are marked difficult (none, for detections made without the flag)."""
    flags = detections.data.get(DIFFICULT)
    return np.zeros(len(detections), dtype=bool) if flags is None else np.asarray(flags, dtype=bool)


def on_faces_not_scored(xyxy: np.ndarray, sample: Sample, iou: float, difficult: bool = True) -> np.ndarray:
    """Which boxes lie on a region that is neither found nor missed (a face marked difficult, a box `--label-map
    OLD=` left out: IoU >= iou) and on no scored face: scoring leaves such boxes out, neither right nor wrong."""
    hard = difficult_of(sample.detections) if difficult else np.zeros(len(sample.detections), dtype=bool)
    unscored = np.concatenate([sample.detections.xyxy[hard].reshape(-1, 4), sample.left_out])
    if not len(xyxy) or not len(unscored):
        return np.zeros(len(xyxy), dtype=bool)
    on_unscored = sv.box_iou_batch(xyxy, unscored).max(axis=1) >= iou
    plain = sample.detections.xyxy[~hard]
    on_plain = sv.box_iou_batch(xyxy, plain).max(axis=1) >= iou if len(plain) else np.zeros(len(xyxy), dtype=bool)
    return on_unscored & ~on_plain


def empty_detections() -> sv.Detections:
    """The ground truth of an image without boxes, typed as one with boxes is (float32 xyxy, int class ids, no
    confidence)."""
    return sv.Detections(xyxy=np.zeros((0, 4), dtype=np.float32), class_id=np.zeros(0, dtype=int))


def text_encoding_of(head: bytes) -> str:
    """The encoding of a text file that starts with `head`, as tools on any system write it: UTF-16 with its mark
    (Notepad's "Unicode", Windows PowerShell's `>`), else UTF-8 (a byte-order mark from Windows Notepad dropped)."""
    return "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"


def read_text_file(path: Path) -> str:
    """A small text file in UTF-8 or UTF-16 (text_encoding_of); else a MaskwatchError naming the file. A mark
    starting a later line (files from Notepad joined with `cat`) is dropped too: it is never part of a name."""
    data = path.read_bytes()
    try:
        return data.decode(text_encoding_of(data[:2])).replace("\n\ufeff", "\n")
    except UnicodeDecodeError as exc:
        raise MaskwatchError(f"{path}: not a text file in UTF-8 or UTF-16 ({exc.reason} at byte {exc.start})") \
            from None


def spelling_key(label: str) -> str:
    """What is left of a label without case, spaces, underscores and hyphens: `With_Mask` and `with mask` meet."""
    return re.sub(r"[\s_-]+", "", label).lower()


def is_inside(path: Path, root: Path) -> bool:
    """Whether a path lies in a folder, by its normalised absolute name (`..` removed; links are not followed,
    so the symlinked images of a converted data set count as inside it)."""
    path_abs, root_abs = os.path.abspath(path), os.path.abspath(root)
    return path_abs == root_abs or path_abs.startswith(root_abs.rstrip(os.sep) + os.sep)


class DatasetBuilder:
    """Collects samples from a reader, applying every check in one place and keeping a list of problems.

    classes: the class list to hold labels to. When None, classes are learnt in the order first seen
    (formats like VOC carry no class list). label_map renames labels before the check.
    root: the data set's folder; an image outside it (a VOC <path> or a COCO file_name pointing anywhere) is
    skipped unless allow_outside.
    """

    def __init__(self, classes: list[str] | None = None, label_map: dict[str, str] | None = None,
                 root: Path | None = None, allow_outside: bool = False):
        self.fixed_classes = classes is not None
        self.classes: list[str] = list(classes) if classes else []
        self.label_map = label_map or {}
        self.root = root
        self.allow_outside = allow_outside
        self.samples: list[Sample] = []
        self.named_by: dict[Path, list[str]] = defaultdict(list)  # the annotation files (or entries) of each image
        self.problems: list[str] = []
        self.unknown_labels: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()  # boxes left out by --label-map OLD=, per original label
        self.raw_labels: set[str] = set()  # labels as the files spell them, before --label-map
        self.unsaid = 0  # problems kept but not logged (past SAID)
        self.unknown_first: dict[str, str] = {}  # label -> where it was first seen
        self.label_files: dict[str, dict[str, None]] = defaultdict(dict)  # label -> where it was seen (ordered)
        self.order_given = False  # the file lists its classes (YOLO, COCO, a label map): keep that order
        self.turned: list[Path] = []  # images with an EXIF rotation: said once, when the load ends
        self._headers: dict[Path, ImageHeader] = {}  # headers read for a reader (its boxes' size), reused by add()

    SAID = 20  # problems logged one by one; the rest are counted (a broken export can hold thousands)

    def problem(self, message: str, always: bool = False) -> None:
        """Log and keep a problem; past the first SAID per-file ones, only kept (counted at the end). `always`:
        a problem of the whole data set (a label spelt two ways), logged whatever came before."""
        if always or len(self.problems) < self.SAID:
            log.warning(message)
        else:
            self.unsaid += 1
        self.problems.append(message)

    def class_id(self, label: str, where: str) -> int | None:
        self.raw_labels.add(label)
        original, label = label, self.label_map.get(label, label)
        if label == DROP_LABEL:  # --label-map OLD=
            self.dropped[original] += 1
            return None
        self.label_files[label][where] = None
        if label in self.classes:
            return self.classes.index(label)
        if self.fixed_classes:  # named once, with counts, when the load stops (build)
            self.unknown_labels[label] += 1
            self.unknown_first.setdefault(label, where)
            return None
        self.classes.append(label)
        return len(self.classes) - 1

    def declare_classes(self, names: list[str]) -> None:
        """The class list a file gives (YOLO's classes.txt, COCO's categories, a TFRecord's label map): learnt in
        the file's order, which the data set then keeps (unless --classes fixed the list)."""
        if self.fixed_classes:
            return
        for name in names:
            self.raw_labels.add(name)
            mapped = self.label_map.get(name, name)
            if mapped != DROP_LABEL and mapped not in self.classes:
                self.classes.append(mapped)
        self.order_given = True

    def header(self, image_path: Path) -> ImageHeader:
        """Format, stored size and EXIF orientation from the header alone (no pixel decoded), or MaskwatchError
        naming the file: read once per image, whether a reader asks (YOLO and TFRecord boxes are fractions of the
        size) or `add` does."""
        if image_path not in self._headers:
            self._headers[image_path] = image_header(image_path, str(image_path), orientation=True)
        return self._headers[image_path]

    def stored_size(self, image_path: Path) -> tuple[int, int]:
        """Width and height of the stored pixels (`header`)."""
        header = self.header(image_path)
        return header.width, header.height

    def add(self, image_path: Path, width: int, height: int, boxes: list[tuple], where: str) -> None:
        """Add one image; boxes are (x1, y1, x2, y2, label) in pixels, or (..., label, difficult)."""
        if self.root is not None and not self.allow_outside and not is_inside(image_path, self.root):
            self.problem(f"{where}: image {image_path} lies outside the data set folder {self.root}; skipped "
                         f"(move it in, or pass --allow-outside-images to read it)")
            return
        if not image_path.is_file():
            self.problem(f"{where}: image {image_path} is missing; skipped")
            return
        try:  # the header only: an empty or non-image file is named here, for every command
            _, stored_width, stored_height, orientation = self.header(image_path)
        except MaskwatchError as exc:
            self.problem(f"{where}: {exc}; skipped")
            return
        if orientation != 1:
            self.turned.append(image_path)
        if width <= 0 or height <= 0:
            width, height = stored_width, stored_height
        elif (width, height) != (stored_width, stored_height) and not (
                orientation >= 5 and (width, height) == (stored_height, stored_width)):
            self.problem(f"{where}: the annotation says {width}x{height} pixels but {image_path.name} is "
                         f"{stored_width}x{stored_height}: was the image resized or replaced after it was annotated? "
                         f"Its boxes are read as annotated, in the image as it is")
            width, height = stored_width, stored_height  # (what every output writes: YOLO's boxes are fractions of it)
        xyxy, ids, difficult, left_out = [], [], [], []
        for x1, y1, x2, y2, label, *flags in boxes:
            if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
                self.problem(f"{where}: box {label} ({x1}, {y1}, {x2}, {y2}) has a coordinate that is not a "
                             f"finite number; dropped")
                continue
            cid = self.class_id(label, where)
            if cid is None:
                if self.label_map.get(label) == DROP_LABEL:
                    left_out.append((x1, y1, x2, y2))
                continue
            if x2 < x1 or y2 < y1:  # VOC xmin > xmax, a COCO box of negative width
                self.problem(f"{where}: box {label} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is inverted (its right or bottom "
                             f"edge before its left or top); dropped")
                continue
            if x2 > width or y2 > height or x1 < 0 or y1 < 0:
                given = f"box {label} ({x1:g}, {y1:g}, {x2:g}, {y2:g})"
                # One pixel past the edge is the 1-based VOC habit; more than that is worth a message.
                beyond = x2 > width + 1 or y2 > height + 1 or x1 < -1 or y1 < -1
                x1, x2 = min(max(x1, 0), width), min(max(x2, 0), width)
                y1, y2 = min(max(y1, 0), height), min(max(y2, 0), height)
                if x2 - x1 <= 0 or y2 - y1 <= 0:  # wholly outside: said once, as what it is
                    self.problem(f"{where}: {given} lies wholly outside the {width}x{height} image; dropped")
                    continue
                if beyond:
                    self.problem(f"{where}: {given} lies outside the {width}x{height} image; clipped")
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                self.problem(f"{where}: box {label} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has zero size; dropped")
                continue
            xyxy.append((x1, y1, x2, y2))
            ids.append(cid)
            difficult.append(bool(flags and flags[0]))
        detections = (sv.Detections(xyxy=np.asarray(xyxy, dtype=np.float32).reshape(-1, 4),
                                    class_id=np.asarray(ids, dtype=int))
                      if xyxy else empty_detections())
        detections.data[DIFFICULT] = np.asarray(difficult, dtype=bool)
        left_out_boxes = np.clip(np.asarray(left_out, dtype=np.float32).reshape(-1, 4), 0, [width, height] * 2)
        left_out_boxes = left_out_boxes[(left_out_boxes[:, 2] > left_out_boxes[:, 0])
                                        & (left_out_boxes[:, 3] > left_out_boxes[:, 1])]
        self.samples.append(Sample(image_path, int(width), int(height), detections, orientation, left_out_boxes))
        self.named_by[image_path].append(where)

    def build(self, source: str) -> Dataset:
        if self.unknown_labels:
            known = ", ".join(self.classes)
            found = ", ".join(f"{k!r} ({v} box{'es' if v > 1 else ''}, first in {self.unknown_first[k]})"
                              for k, v in self.unknown_labels.most_common())
            raise MaskwatchError(
                f"{source}: unknown labels {found}; known labels are {known}. "
                f"Rename them with --label-map OLD=NEW"
            )
        if self.unsaid:
            log.warning("%s: %d more problems, not all like those above (`maskwatch data stats` writes every "
                        "one to a file; Dataset.problems in Python)", source, self.unsaid)
        if not self.samples:
            raise MaskwatchError(f"{source}: no usable annotated images found")
        if self.dropped:
            log.warning("%s: left out %s, as --label-map asked (as regions to ignore: training takes no "
                        "background example from them, and scoring counts a box on one neither right nor wrong; a "
                        "copy written by `convert` keeps no trace of them)", source,
                        ", ".join(f"{n} {label!r} box{'es' if n > 1 else ''}" for label, n in self.dropped.items()))
        self._warn_about_spellings()
        if self.turned:
            log.warning("%s: %d image(s) carry an EXIF rotation (%s); their boxes are read in the stored pixels, as "
                        "labelImg shows them (`evaluate` moves predictions made upright there), while tools that "
                        "show photos upright (CVAT, Label Studio) draw boxes on the turned picture: if yours did, "
                        "save the images turned (e.g. `mogrify -auto-orient *.jpg`) and the boxes will match", source,
                        len(self.turned),
                        name_some(p.name for p in self.turned))
        self.samples.sort(key=lambda s: s.image_path.name)
        self._refuse_shared_stems(source)
        if not self.fixed_classes:
            self._canonical_class_order()
            self._warn_about_other_classes(source)
        if not any(len(sample.detections) for sample in self.samples):
            self.problem(f"{source}: {len(self.samples)} image(s) but no box with a usable label", always=True)
        return Dataset(self.classes, self.samples, self.problems, frozenset(self.raw_labels))

    def _refuse_shared_stems(self, source: str) -> None:
        """Images are named by their file name without suffix everywhere (split lists, VOC and YOLO label files,
        training, scoring): two images of one such name (a.jpg and a.png, or p.jpg in two folders) would be
        written over each other or mixed up, so the load stops and names them."""
        by_stem: dict[str, list[Path]] = defaultdict(list)
        for sample in self.samples:
            by_stem[sample.stem].append(sample.image_path)
        twice = sorted({paths[0] for paths in by_stem.values() if len(paths) != len(set(paths))})
        if twice:
            named = name_some(f"{path} (by {' and '.join(self.named_by[path])})" for path in twice)
            raise MaskwatchError(f"{source}: {len(twice)} image(s) annotated twice (two annotation files or entries "
                                 f"name each): {named}; keep one annotation per image")
        shared = {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}
        if shared:
            pairs = name_some(" and ".join(str(p) for p in paths) for paths in shared.values())
            raise MaskwatchError(f"{source}: {len(shared)} name(s) used by more than one image: {pairs}. Images are "
                                 f"told apart by their file name without suffix (split lists, VOC and YOLO label "
                                 f"files, training, scoring): rename one of each")

    def _warn_about_spellings(self) -> None:
        """Labels that differ only by case, spaces or underscores (`With_Mask` beside `with_mask`) are almost
        always typos that would become classes of their own: name them and the files that use them."""
        groups: dict[str, list[str]] = defaultdict(list)
        for label in self.classes:
            groups[spelling_key(label)].append(label)
        two_classes = set(groups) <= {spelling_key(c) for c in TWO_CLASSES}
        for labels in groups.values():
            if len(labels) < 2:
                continue
            # The project's own class name first (a typo is never the target), else the commonest spelling; and
            # where that is no class of the project's, the mask class its name gives away (`Mask` -> with_mask).
            own = MASK_CLASSES + TWO_CLASSES if two_classes else MASK_CLASSES  # (mask / no_mask: a 2-class set)
            labels.sort(key=lambda label: (label not in own, -len(self.label_files.get(label, {}))))
            common, rare = labels[0], labels[1:]
            target = common if common in own or two_classes else likely_mask_class(common) or common
            uses = [f"{label!r} in {name_some(self.label_files.get(label, {})) or 'no box'}" for label in rare]
            renamed = [label for label in labels if label != target]
            self.problem(f"labels {', '.join(repr(label) for label in labels)} differ only by case, spaces or "
                         f"underscores: {'; '.join(uses)}. Rename with "
                         f"{' '.join('--label-map ' + shlex.quote(label + '=' + target) for label in renamed)}, or "
                         f"fix the class list with --classes", always=True)

    def _warn_about_other_classes(self, source: str) -> None:
        """Labels that are not maskwatch's classes become classes of their own (a typo such as `nomask` among
        the mask classes, or another tool's names): say so with the renaming their names suggest."""
        if set(self.classes) <= set(TWO_CLASSES):  # a 2-class set (mask / no_mask): `evaluate --scheme 2class`
            return
        meanings = [meaning_of(c) for c in self.classes]
        if not set(self.classes) & set(MASK_CLASSES) and all(meanings) and len(set(meanings)) == len(meanings):
            return  # names of one's own that say what they mean, each another (mask / no_mask / incorrect)
        spelt = {spelling_key(c) for c in self.classes if c in MASK_CLASSES}  # `With Mask` beside `with_mask`:
        other = [c for c in self.classes if c not in MASK_CLASSES and spelling_key(c) not in spelt]  # said above
        if not other:
            return
        hint = label_map_hint(other)
        self.problem(f"{source}: {', '.join(map(repr, other))} {'is' if len(other) == 1 else 'are'} not among "
                     f"maskwatch's classes ({', '.join(MASK_CLASSES)}): each is learnt as a class of its own, and "
                     f"predictions of the mask classes score nothing on it. Rename with "
                     f"{hint or '--label-map OLD=NEW'} (OLD= leaves a label's boxes out), or fix the class list "
                     f"with --classes", always=True)

    def _canonical_class_order(self) -> None:
        """Classes learnt from boxes come in the order first seen; fix it so ids are repeatable: the project's own
        order for mask classes, else the order the file gave, else alphabetical."""
        if set(self.classes) <= set(MASK_CLASSES):
            order = [c for c in MASK_CLASSES if c in self.classes]
        elif self.order_given:
            return
        else:
            order = sorted(self.classes)
        remap = np.array([order.index(c) for c in self.classes], dtype=int)
        for sample in self.samples:
            sample.detections.class_id = remap[sample.detections.class_id] if len(sample.detections) else \
                sample.detections.class_id
        self.classes = order
