"""Pascal VOC XML, one file per image, as labelImg writes it."""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from maskwatch.data.dataset import Dataset, DatasetBuilder, difficult_of, format_pixel, is_inside
from maskwatch.data.images import IMAGE_SUFFIXES, list_images, place_images
from maskwatch.errors import MaskwatchError, name_some

if TYPE_CHECKING:
    from maskwatch.data.dataset import Split

SIDE_LISTS = Path("ImageSets", "Main")  # VOC's own lists of a split's sides: train.txt, val.txt


def _find_image(xml_path: Path, filename: str | None, path: str | None, images_dir: Path | None,
                root: Path, annotations_dir: Path | None = None) -> Path:
    """VOC's <filename> is often stale (png vs jpg) and labelImg's <path> is the annotator's machine: try <path>
    (relative to the XML), then beside the XML, in images/, then by stem. An image inside the data set wins over
    one outside it (which the builder refuses unless asked)."""
    # images/ beside annotations/ (Kaggle's, labelImg's), or PASCAL VOC's own JPEGImages/ beside Annotations/
    folders = [d for d in (images_dir, xml_path.parent, xml_path.parent.parent / "images",
                           xml_path.parent.parent / "JPEGImages") if d is not None]
    if annotations_dir is not None and xml_path.parent != annotations_dir:  # annotations/cam A/x.xml: images/cam A/
        inner = xml_path.parent.relative_to(annotations_dir)
        folders += [annotations_dir.parent / name / sub for name in ("images", "JPEGImages") for sub in (inner, ".")]
    names = [filename] if filename else []
    stems = dict.fromkeys([Path(filename).stem, xml_path.stem] if filename else [xml_path.stem])
    # Cameras and Windows write .JPG; file systems here tell cases apart, the XML may not
    names += [stem + suffix for stem in stems for s in IMAGE_SUFFIXES for suffix in (s, s.upper())]
    # A macOS disk stores "é" decomposed (NFD), most tools write it composed (NFC): same name on screen
    names += [unicodedata.normalize(form, n) for n in names if not n.isascii() for form in ("NFC", "NFD")]
    names = list(dict.fromkeys(names))
    candidates = [xml_path.parent / path] if path else []  # an absolute <path> stays absolute
    candidates += [folder / name for folder in folders for name in names]
    existing = [c for c in candidates if c.is_file()]
    inside = [c for c in existing if is_inside(c, root)]
    if inside or existing:
        return (inside or existing)[0]
    images = xml_path.parent.parent / "images"  # where the message says it is missing: where it most likely belongs
    expected = images_dir or (images if images.is_dir() else xml_path.parent)
    return expected / (filename or xml_path.stem + ".jpg")


def read_voc(annotations_dir: Path, images_dir: Path | None = None, classes: list[str] | None = None,
             label_map: dict[str, str] | None = None, dataset_root: Path | None = None,
             allow_outside_images: bool = False) -> Dataset:
    """dataset_root: the data set's folder (default: the folder above annotations/); images outside it are
    skipped unless allow_outside_images."""
    nested = annotations_dir.name.lower() == "annotations"  # its subfolders too (one per camera, per day)
    xml_files = sorted(annotations_dir.rglob("*.xml") if nested else annotations_dir.glob("*.xml"))
    if not xml_files:
        raise MaskwatchError(f"{annotations_dir}: no .xml files found")
    if dataset_root is None:
        dataset_root = annotations_dir.parent if annotations_dir.name.lower() == "annotations" else annotations_dir
    builder = DatasetBuilder(classes, label_map, root=dataset_root, allow_outside=allow_outside_images)
    for xml_path in xml_files:
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            builder.problem(f"{xml_path}: unparsable XML ({exc}); skipped")
            continue
        try:
            size = root.find("size")
            width = int(float(size.findtext("width", "0"))) if size is not None else 0
            height = int(float(size.findtext("height", "0"))) if size is not None else 0
            boxes = []
            for obj in root.iter("object"):
                bnd = obj.find("bndbox")
                label = (obj.findtext("name") or "").strip()
                if bnd is None or not label:
                    builder.problem(f"{xml_path}: an <object> without name or bndbox; skipped")
                    continue
                coords = [float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
                boxes.append((*coords, label, (obj.findtext("difficult") or "0").strip() in ("1", "true")))
        except (TypeError, ValueError, OverflowError) as exc:
            builder.problem(f"{xml_path}: malformed numbers in the XML ({exc}); skipped")
            continue
        image_path = _find_image(xml_path, root.findtext("filename"), root.findtext("path"), images_dir,
                                 builder.root, annotations_dir if nested else None)
        builder.add(image_path, width, height, boxes, str(xml_path))
    _name_unannotated(builder, dataset_root, {p.stem for p in xml_files})
    return builder.build(str(annotations_dir))


def _name_unannotated(builder: DatasetBuilder, root: Path, xml_stems: set[str]) -> None:
    """Images in the images folder that no XML names are left out (VOC has one file per image: a photo without
    faces needs an XML without <object>); say so rather than drop them without a word. An image with an XML of
    its name that was skipped (unparsable) is not one: that XML's own problem says why."""
    used = {s.image_path.resolve() for s in builder.samples}
    used_by_stem = {s.stem: s.image_path.name for s in builder.samples}
    for folder in (root / "images", root / "JPEGImages"):
        if folder.is_dir():
            images = [p for p in list_images(folder) if p.resolve() not in used]
            left = [p for p in images if p.stem not in xml_stems]
            if left:
                builder.problem(f"{folder}: {len(left)} image(s) that no annotation file names are left out "
                                f"({name_some(p.name for p in left)}); a photo without faces needs an XML "
                                f"without <object>", always=True)
            twins = [f"{p.name} beside {used_by_stem[p.stem]}" for p in images if p.stem in used_by_stem]
            if twins:  # x.png beside the x.jpg that x.xml names
                builder.problem(f"{folder}: {len(twins)} image(s) left out that share a name with the image their "
                                f"annotation file names ({name_some(twins)}); images are told apart by their file "
                                f"name without suffix: rename or remove one of each", always=True)


def write_voc(dataset: Dataset, out_dir: Path, images: str = "hardlink", split: "Split | None" = None) -> None:
    """annotations/ (one XML per image) and images/ beside it; with a split, ImageSets/Main/train.txt and val.txt
    (stems), VOC's own way to list them. No absolute paths: <folder> is images, <path> is left out."""
    place_images([s.image_path for s in dataset.samples], out_dir / "images", images, dataset.turned_images)
    ann_dir = out_dir / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    for name, part in split.parts(dataset) if split else []:
        sets = out_dir / SIDE_LISTS
        sets.mkdir(parents=True, exist_ok=True)
        (sets / f"{name}.txt").write_text("".join(s.stem + "\n" for s in part.samples))
    for sample in dataset.samples:
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "images"
        ET.SubElement(root, "filename").text = sample.image_path.name
        size = ET.SubElement(root, "size")
        for key, value in (("width", sample.width), ("height", sample.height), ("depth", 3)):
            ET.SubElement(size, key).text = str(value)
        for (x1, y1, x2, y2), label, difficult in zip(sample.detections.xyxy, dataset.labels_of(sample),
                                                      difficult_of(sample.detections)):
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = label
            ET.SubElement(obj, "difficult").text = str(int(difficult))
            bnd = ET.SubElement(obj, "bndbox")
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (x1, y1, x2, y2)):
                ET.SubElement(bnd, key).text = format_pixel(value)
        ET.indent(root)
        ET.ElementTree(root).write(ann_dir / f"{sample.stem}.xml", encoding="utf-8")
