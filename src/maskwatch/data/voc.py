"""Pascal VOC XML, one file per image, as labelImg writes it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from maskwatch.data.dataset import Dataset, DatasetBuilder, format_pixel
from maskwatch.data.images import IMAGE_SUFFIXES
from maskwatch.errors import MaskwatchError


def _find_image(xml_path: Path, filename: str | None, path: str | None, images_dir: Path | None) -> Path:
    """VOC's <filename> is often stale (png vs jpg); try <path>, then beside the XML, in images/, then by stem."""
    if path and Path(path).is_file():
        return Path(path)
    folders = [d for d in (images_dir, xml_path.parent, xml_path.parent.parent / "images") if d is not None]
    names = [filename] if filename else []
    names += [xml_path.stem + s for s in IMAGE_SUFFIXES]
    for folder in folders:
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return folders[0] / (filename or xml_path.stem + ".jpg")


def read_voc(annotations_dir: Path, images_dir: Path | None = None, classes: list[str] | None = None,
             label_map: dict[str, str] | None = None) -> Dataset:
    xml_files = sorted(annotations_dir.glob("*.xml"))
    if not xml_files:
        raise MaskwatchError(f"{annotations_dir}: no .xml files found")
    builder = DatasetBuilder(classes, label_map)
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
                boxes.append((*coords, label))
        except (TypeError, ValueError) as exc:
            builder.problem(f"{xml_path}: malformed numbers in the XML ({exc}); skipped")
            continue
        image_path = _find_image(xml_path, root.findtext("filename"), root.findtext("path"), images_dir)
        builder.add(image_path, width, height, boxes, str(xml_path))
    return builder.build(str(annotations_dir))


def write_voc(dataset: Dataset, out_dir: Path) -> None:
    """Write one XML per image into out_dir/annotations; images are referenced, not copied."""
    ann_dir = out_dir / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    for sample in dataset.samples:
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = str(sample.image_path.parent)
        ET.SubElement(root, "filename").text = sample.image_path.name
        ET.SubElement(root, "path").text = str(sample.image_path.resolve())
        size = ET.SubElement(root, "size")
        for key, value in (("width", sample.width), ("height", sample.height), ("depth", 3)):
            ET.SubElement(size, key).text = str(value)
        for (x1, y1, x2, y2), label in zip(sample.detections.xyxy, dataset.labels_of(sample)):
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = label
            ET.SubElement(obj, "difficult").text = "0"
            bnd = ET.SubElement(obj, "bndbox")
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (x1, y1, x2, y2)):
                ET.SubElement(bnd, key).text = format_pixel(value)
        ET.indent(root)
        ET.ElementTree(root).write(ann_dir / f"{sample.stem}.xml", encoding="utf-8")
