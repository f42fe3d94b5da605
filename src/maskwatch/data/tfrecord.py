"""TFRecord in the TensorFlow Object Detection API layout plus label_map.pbtxt, without TensorFlow.

The `tfrecord` package writes the records and decodes their tf.train.Example protos; reading checks each record's
checksum (a damaged record is named and skipped, the others kept). Images live inside the
records (image/encoded); on reading they are unpacked once into a cache folder so the rest of maskwatch can
work with paths like for every other format.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from maskwatch.cache import cache_dir, file_key
from maskwatch.data.dataset import Dataset, DatasetBuilder, difficult_of, from_normalised, read_text_file
from maskwatch.data.images import image_header
from maskwatch.errors import MaskwatchError, name_some

if TYPE_CHECKING:
    from maskwatch.data.dataset import Split

LABEL_MAP_FILE = "label_map.pbtxt"
RECORD_FILE = "data.tfrecord"
_QUOTED = r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'"""  # a text-format string, escapes and all
_TOKEN = re.compile(_QUOTED + r"|#[^\n]*|[{}<>:,;]|[^\s{}<>:,;#\"']+")
_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v", "\\": b"\\",
            "'": b"'", '"': b'"', "?": b"?"}


def read_label_map(path: Path) -> dict[int, str]:
    """The `item { id: 1 name: 'x' }` blocks of a TF OD API label map, read as protobuf's text format: either
    quote, backslash escapes, non-ASCII letters raw or as octal bytes, `#` comments, blocks nested in an item
    (keypoints { ... }) passed over; the name is `name`, or `display_name` where it comes first."""
    try:
        text = read_text_file(path)
    except OSError as exc:
        raise MaskwatchError(f"{path}: cannot read the label map ({exc})") from exc
    label_map: dict[int, str] = {}
    for item in _label_map_items(text):
        key = "name" if "name" in item else "display_name" if "display_name" in item else None
        if not item.get("id", "").isdigit() or key is None or len(item[key]) < 2 or item[key][0] not in "'\"":
            raise MaskwatchError(f"{path}: an item without id or name: {item!r}")
        name = _unquoted(item[key])
        if not name.strip():
            raise MaskwatchError(f"{path}: an item without id or name: {item!r}")
        if int(item["id"]) in label_map and label_map[int(item["id"])] != name:
            raise MaskwatchError(f"{path}: id {item['id']} names two classes ({label_map[int(item['id'])]!r} and "
                                 f"{name!r}): a box's class id would be read as either; give each class its own id")
        label_map[int(item["id"])] = name
    if not label_map and any(not t.startswith("#") for t in _TOKEN.findall(text)):  # (comments only: no class)
        raise MaskwatchError(f"{path}: no `item {{ id: N name: 'x' }}` entries")
    return label_map


def _label_map_items(text: str) -> list[dict[str, str]]:
    """Each top-level `item { ... }` block as its fields (the first value of each, as written); nested blocks and
    comments are passed over."""
    items: list[dict[str, str]] = []
    depth, field, current, last = 0, None, None, None
    for token in _TOKEN.findall(text):
        if token.startswith("#") or token in (":", ",", ";"):
            continue
        if field is None and last is not None and token[0] in "'\"" and current is not None:
            current[last] = current[last][:-1] + token[1:]  # ("with" "_mask": adjacent strings are one)
            continue
        last = None
        if token in "{<":
            if depth == 0 and field == "item":
                current = {}
            depth, field = depth + 1, None
        elif token in "}>":
            depth -= 1
            if depth == 0 and current is not None:
                items.append(current)
                current = None
        elif field is None:
            field = token
        else:
            if depth == 1 and current is not None and field not in current:
                current[field] = token
                last = field if token[0] in "'\"" else None
            field = None
    return items


def _unquoted(quoted: str) -> str:
    """A text-format string's value: its escapes (\\n, \\', \\", \\\\, \\ooo octal and \\xHH bytes) undone, its
    bytes read as UTF-8."""
    body, out, i = quoted[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 == len(body):
            out += char.encode("utf-8")
            i += 1
            continue
        code = body[i + 1]
        octal = re.match(r"[0-7]{1,3}", body[i + 1:])
        hexa = re.match(r"x([0-9a-fA-F]{1,2})", body[i + 1:])
        wide = re.match(r"u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})", body[i + 1:])
        if wide:
            out += chr(int(wide.group(1) or wide.group(2), 16)).encode("utf-8", errors="replace")
            i += 1 + len(wide.group())
        elif octal:
            out.append(int(octal.group(), 8) & 0xFF)
            i += 1 + len(octal.group())
        elif hexa:
            out.append(int(hexa.group(1), 16))
            i += 1 + len(hexa.group())
        else:
            out += _ESCAPES.get(code, code.encode("utf-8"))
            i += 2
    return out.decode("utf-8", errors="replace")


def write_label_map(classes: list[str], path: Path) -> None:
    """label_map.pbtxt for `classes`, ids from 1 in their order (the TF OD API keeps 0 for the background), as _example
    numbers the boxes; names quoted as protobuf's text format reads them (a quote or backslash escaped)."""
    def quoted(name: str) -> str:
        escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        return f'"{escaped}"'

    items = "".join(f"item {{\n  id: {i}\n  name: {quoted(name)}\n}}\n" for i, name in enumerate(classes, 1))
    path.write_text(items or "# no classes: the data set has no boxes\n", encoding="utf-8")


def is_record_file(path: Path) -> bool:
    """A TFRecord file by its name: data.tfrecord, train.tfrecord-00000-of-00004 (shards), or the TF object
    detection API's train.record."""
    return ".tfrecord" in path.name or path.suffix == ".record"


def _records(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    records = sorted(p for p in path.iterdir() if is_record_file(p))
    if not records:
        raise MaskwatchError(f"{path}: no .tfrecord / .record files")
    return records


def _cache_dir(record: Path) -> Path:
    return cache_dir("tfrecord") / file_key(record)


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (bytes, str)):
        return [value]
    return list(np.atleast_1d(value))


def _text(value) -> str:
    value = value[0] if isinstance(value, (list, np.ndarray)) and len(value) else value
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _masked_crc(data: bytes) -> int:
    """TFRecord's checksum of a piece: CRC-32C, rotated and offset ("masked") as TensorFlow stores it."""
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def checked_examples(record: Path) -> Iterator[tuple[int, dict | str]]:
    """Each record of a TFRecord file, by index: its features (as tfrecord's loader gives them), or why it was
    skipped when its data does not match its checksum (a damaged file: the picture would read as garbage).
    A damaged length, or a file cut short, ends the reading with a ValueError: what follows cannot be found."""
    from tfrecord import example_pb2
    from tfrecord.reader import extract_feature_dict

    types = {"byte": "bytes_list", "float": "float_list", "int": "int64_list"}
    with record.open("rb") as f:
        for index in itertools.count():
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise ValueError(f"the file ends inside record {index}'s header")
            length = struct.unpack("<Q", header[:8])[0]
            if struct.unpack("<I", header[8:])[0] != _masked_crc(header[:8]):
                raise ValueError(f"record {index}'s length does not match its checksum")
            data, crc = f.read(length), f.read(4)
            if len(data) < length or len(crc) < 4:
                raise ValueError(f"the file ends inside record {index}")
            if struct.unpack("<I", crc)[0] != _masked_crc(data):
                yield index, "its data does not match its checksum (a damaged file)"
                continue
            example = example_pb2.Example()
            example.ParseFromString(data)
            yield index, extract_feature_dict(example.features, None, types)


def _unnamed(record: Path, index: int) -> str:
    """The name of a record's image where it gives none: after its record file, so names tell images apart."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', record.name)}-{index:06d}.jpg"


def record_side_stems(folder: Path, side: str) -> tuple[Path, list[str]] | None:
    """The image stems of a side's records (`convert --val` writes val.tfrecord, or its shards; the TF object
    detection API's val.record): the first such file and the stems, or None where there is none."""
    files = sorted(p for p in folder.iterdir() if is_record_file(p) and p.name.split(".")[0] == side) \
        if folder.is_dir() else []
    stems = []
    for record in files:
        try:
            for index, example in checked_examples(record):
                if not isinstance(example, str):
                    name = _text(example.get("image/filename")) or _unnamed(record, index)
                    stems.append(Path(name).stem)
        except Exception:  # a truncated file: the records before the break (read_tfrecord says it)
            continue
    return (files[0], stems) if stems else None


def read_tfrecord(path: Path, label_map_path: Path | None = None, classes: list[str] | None = None,
                  label_map: dict[str, str] | None = None) -> Dataset:
    """A TFRecord file or a folder of them (shards too), with the label_map.pbtxt beside them (or `label_map_path`);
    images are unpacked into the cache once. A box's class is its text, else its id's name in the map; a damaged record
    is skipped and said."""
    folder = path if path.is_dir() else path.parent
    label_map_path = label_map_path or folder / LABEL_MAP_FILE
    id_to_name = read_label_map(label_map_path) if label_map_path.is_file() else {}
    builder = DatasetBuilder(classes, label_map)
    builder.declare_classes([id_to_name[k] for k in sorted(id_to_name)])  # --label-map applies
    if 0 in id_to_name:  # the TF OD API's ids start at 1 (0 is the background): a map from 0 is likely off by one
        builder.problem(f"{label_map_path}: id 0 names {id_to_name[0]!r}, but in the TF Object Detection API id 0 is "
                        f"the background and classes start at 1; check it against the ids in the records", always=True)
    unnamed: Counter[int] = Counter()  # class ids that no text and no label map name, with their box counts
    disagree: Counter[tuple[int, str, str]] = Counter()  # (id, the box's text, the map's name for the id)
    for record in _records(path):
        out = _cache_dir(record)
        out.mkdir(parents=True, exist_ok=True)
        try:
            for index, example in checked_examples(record):
                where = f"{record}: record {index}"
                if isinstance(example, str):
                    builder.problem(f"{where}: {example}; skipped")
                    continue
                name = Path(_text(example.get("image/filename")) or _unnamed(record, index)).name
                encoded = example.get("image/encoded")
                if encoded is None:
                    builder.problem(f"{where}: no image/encoded; skipped")
                    continue
                image_path = out / name
                if not image_path.is_file():
                    image_path.write_bytes(encoded if isinstance(encoded, bytes) else np.asarray(encoded).tobytes())
                width = int(_as_list(example.get("image/width"))[0]) if "image/width" in example else 0
                height = int(_as_list(example.get("image/height"))[0]) if "image/height" in example else 0
                xmins, ymins = _as_list(example.get("image/object/bbox/xmin")), _as_list(example.get("image/object/bbox/ymin"))
                xmaxs, ymaxs = _as_list(example.get("image/object/bbox/xmax")), _as_list(example.get("image/object/bbox/ymax"))
                texts = [_text(t) for t in _as_list(example.get("image/object/class/text"))]
                ids = [int(i) for i in _as_list(example.get("image/object/class/label"))]
                difficult = [bool(int(d)) for d in _as_list(example.get("image/object/difficult"))]
                if not (len(xmins) == len(ymins) == len(xmaxs) == len(ymaxs)):
                    builder.problem(f"{where}: bbox lists of different lengths; skipped")
                    continue
                try:  # the boxes are fractions of the image as it is, whatever size the record states (the builder
                    scale_width, scale_height = builder.stored_size(image_path)  # says where they differ)
                except MaskwatchError:
                    scale_width, scale_height = width, height  # the builder names the image it cannot read
                if width <= 0 or height <= 0:
                    width, height = scale_width, scale_height
                boxes = []
                for j in range(len(xmins)):
                    label = texts[j] if j < len(texts) else id_to_name.get(ids[j] if j < len(ids) else -1)
                    if j < len(texts) and j < len(ids) and id_to_name.get(ids[j], texts[j]) != texts[j]:
                        disagree[(ids[j], texts[j], id_to_name[ids[j]])] += 1
                    if not label:
                        unnamed[ids[j] if j < len(ids) else -1] += 1  # said once, below
                        continue
                    boxes.append((from_normalised(xmins[j], scale_width), from_normalised(ymins[j], scale_height),
                                  from_normalised(xmaxs[j], scale_width), from_normalised(ymaxs[j], scale_height),
                                  label, j < len(difficult) and difficult[j]))
                builder.add(image_path, width, height, boxes, where)
        except Exception as exc:  # the reader raises bare errors on truncated files
            if isinstance(exc, MaskwatchError):
                raise
            builder.problem(f"{record}: corrupt or truncated TFRecord ({type(exc).__name__}: {exc}); "
                            f"kept the records read before it")
    if disagree:
        pairs = name_some(f"id {i} with text {text!r}, which the map calls {named!r} ({n} box{'es' if n > 1 else ''})"
                          for (i, text, named), n in disagree.most_common())
        builder.problem(f"{path}: the boxes' class ids and texts disagree with {label_map_path}: {pairs}; each box's "
                        f"text is used", always=True)
    if unnamed:
        ids = ", ".join(f"{i} ({n} box{'es' if n > 1 else ''})" for i, n in sorted(unnamed.items()) if i >= 0)
        if not id_to_name:
            raise MaskwatchError(f"{path}: the boxes carry class ids ({ids or 'none'}) but no class text, and there is "
                                 f"no {LABEL_MAP_FILE} beside the records to name the ids; add one (item {{ id: 1 "
                                 f"name: 'with_mask' }} ..., as `maskwatch convert --to tfrecord` writes)")
        builder.problem(f"{path}: boxes whose class id {label_map_path} does not name, skipped: {ids or 'no id'}",
                        always=True)
    return builder.build(str(path))


def check_shards(shards: int) -> None:
    """Refuse --shards below 1: checked before a data set is loaded (check_save_options), and again by
    write_tfrecord."""
    if shards < 1:
        raise MaskwatchError(f"--shards must be 1 or more, got {shards}")


def write_tfrecord(dataset: Dataset, out_dir: Path, split: "Split | None" = None, shards: int = 1) -> None:
    """label_map.pbtxt and data.tfrecord, or train.tfrecord and val.tfrecord with a split; with shards > 1 each
    is cut into NAME.tfrecord-00000-of-0000N (image i goes to shard i % N, as the TF OD API's own tools do)."""
    check_shards(shards)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_label_map(dataset.classes, out_dir / LABEL_MAP_FILE)
    parts = split.parts(dataset) if split else [(Path(RECORD_FILE).stem, dataset)]
    for name, part in parts:
        files = ([out_dir / f"{name}.tfrecord"] if shards == 1 else
                 [out_dir / f"{name}.tfrecord-{i:05d}-of-{shards:05d}" for i in range(shards)])
        _write_records(part, files)


def _write_records(dataset: Dataset, files: list[Path]) -> None:
    from tfrecord import TFRecordWriter

    writers = [TFRecordWriter(str(f)) for f in files]
    try:
        for index, sample in enumerate(dataset.samples):
            writers[index % len(writers)].write(_example(dataset, sample))
    finally:
        for writer in writers:
            writer.close()


def _example(dataset: Dataset, sample) -> dict:
    """One image as a tf.train.Example in the TF Object Detection API's keys (boxes normalised, ids from 1)."""
    xyxy = sample.detections.xyxy.astype(float)
    labels = dataset.labels_of(sample)
    fmt = image_header(sample.image_path, str(sample.image_path)).format  # what the bytes are, whatever the name
    return {
        "image/height": (sample.height, "int"),
        "image/width": (sample.width, "int"),
        "image/filename": (sample.image_path.name.encode(), "byte"),
        "image/source_id": (sample.image_path.name.encode(), "byte"),
        "image/encoded": (sample.image_path.read_bytes(), "byte"),
        "image/format": (("jpeg" if fmt in ("JPEG", "MPO") else fmt.lower()).encode(), "byte"),
        "image/object/bbox/xmin": ((xyxy[:, 0] / sample.width).tolist(), "float"),
        "image/object/bbox/ymin": ((xyxy[:, 1] / sample.height).tolist(), "float"),
        "image/object/bbox/xmax": ((xyxy[:, 2] / sample.width).tolist(), "float"),
        "image/object/bbox/ymax": ((xyxy[:, 3] / sample.height).tolist(), "float"),
        "image/object/class/text": ([label.encode() for label in labels], "byte"),
        "image/object/class/label": ([dataset.classes.index(label) + 1 for label in labels], "int"),
        "image/object/difficult": (difficult_of(sample.detections).astype(int).tolist(), "int"),
    }
