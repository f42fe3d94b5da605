"""Which image files a command works on, and what its outputs are called: one collector for `detect` and
`batch`, so both take the same inputs and no two inputs write the same output."""

from __future__ import annotations

import glob
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

from maskwatch.data.dataset import read_text_file
from maskwatch.data.images import (IMAGE_SUFFIXES, annotated_copy_name, list_images, stem_of, warn_unread,
                                   without_broken_links)
from maskwatch.data.tfrecord import is_record_file
from maskwatch.errors import MaskwatchError, name_some, one_line

log = logging.getLogger(__name__)

LIST_SUFFIXES = (".txt", ".lst")
_GLOB_CHARS = set("*?[")


def read_path_list(path: Path) -> list[Path]:
    """Paths from a list file, one per line ('#' starts a comment). A relative path is taken from the current
    folder when it exists there, else from the list file's folder. Missing files are kept: reading them later
    names them (a batch row, a detect message)."""
    try:
        lines = read_text_file(path).splitlines()
    except (OSError, MaskwatchError) as exc:
        raise MaskwatchError(f"{path}: cannot read this list file ({exc}); expected one image path per line") from exc
    paths = []
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        entry = Path(line)
        if not entry.is_absolute() and not entry.exists() and (path.parent / entry).exists():
            entry = path.parent / entry
        paths.append(entry)
    if missing := [p for p in paths if not p.exists()]:  # (a text file given by mistake: said with its name)
        log.warning("%s: read as a list of image paths, one per line; %d of its %d line(s) name no file that "
                    "exists (e.g. %s)", path, len(missing), len(paths), one_line(str(missing[0])))
    return paths


def is_within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies under it (both resolved: links and `..` followed)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


COPIES_RECORD = ".maskwatch-copies.txt"  # in a `detect --out` folder: the annotated copies detect wrote there


def written_copies(folder: Path) -> set[str] | None:
    """The annotated copies `detect` wrote into `folder` (paths relative to it, as recorded), or None where no
    run of a version that records them wrote there."""
    record = Path(folder) / COPIES_RECORD
    try:
        text = record.read_text(encoding="utf-8", errors="surrogateescape")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise MaskwatchError(f"{record}: cannot read this record of annotated copies ({exc.strerror or exc})") from None
    return {line for line in text.split("\n") if line}


class CopiesRecord:
    """The record of the annotated copies written into a folder (`written_copies`), added to as each is written,
    so a run stopped half-way still says which files are its own; each name once."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.names = written_copies(self.folder) or set()

    def add(self, copy: Path) -> None:
        """Record a copy about to be written (before, so that a run stopped while writing it still owns it)."""
        name = Path(copy).relative_to(self.folder).as_posix()
        if name in self.names or "\n" in name:  # (a name with a line break is not recorded: later runs keep off it)
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with (self.folder / COPIES_RECORD).open("a", encoding="utf-8", errors="surrogateescape") as record:
                record.write(name + "\n")
        except OSError as exc:  # (a full disk: said with the copy, which is not written either)
            raise MaskwatchError(f"{self.folder / COPIES_RECORD}: cannot record the annotated copy {name} "
                                 f"({exc.strerror or exc})") from None
        self.names.add(name)


def any_case_suffix(pattern: str) -> str:
    """A glob whose last part ends in a file suffix of letters (`*.jpg`) matches it in any case (`x.JPG`, as
    cameras name files): the formats are read whatever the case of their suffix, so a folder listing takes both."""
    head, dot, suffix = pattern.rpartition(".")
    last = re.split(r"[/\\]", pattern)[-1]
    if not dot or not suffix.isalpha() or "/" in suffix or "\\" in suffix or "[" in last:  # (a class of its own)
        return pattern
    return head + dot + "".join(f"[{c.lower()}{c.upper()}]" for c in suffix)


def collect_images(specs: Sequence[str | Path], only: Path | None = None, output: Path | None = None,
                   output_copies: set[str] | None = None) -> list[Path]:
    """Image paths in the order given, without repeats, from each spec:
    a folder (every image under it, sorted), an image file, a list file (.txt: one path per line) or a glob
    ('photos/**/*.jpg'); none at all is an error. `only`: a list of names (paths, file names or stems, as
    `data split` writes them); only the images with those stems are kept. `output`: the command's output folder;
    where it lies inside a folder given, its images are left out, said: those `output_copies` names (the copies
    an earlier run wrote, relative to it: `written_copies`), or all of them where that is None (a folder the
    command owns, as batch's annotated/, or one written before copies were recorded)."""
    paths: list[Path] = []
    for spec in specs:
        if not str(spec).strip():  # Path("") is the current folder: an empty argument (a failed $(...)) is a mistake
            raise MaskwatchError("an empty input was given (an unset variable or a failed $(...)?); name images, "
                                 "folders, a .txt list of paths or a quoted glob, e.g. . for this folder")
        path = Path(spec)
        if path.is_dir():
            found = list_images(path)
            if output is not None and not is_within(path, output) and is_within(output, path):
                ours = {p for p in found if is_within(p, output)  # (only where the output lies inside it)
                        and (output_copies is None or p.resolve().relative_to(Path(output).resolve()).as_posix()
                             in output_copies)}
                if ours:
                    log.warning("%s: left out %d image(s) in %s, this command's output folder (%s; name them "
                                "directly to use them as inputs)", path, len(ours), output,
                                "the annotated copies an earlier run wrote" if output_copies is not None
                                else "taken for an earlier run's results")
                    found = [p for p in found if p not in ours]
            if not found and len(specs) > 1:  # (alone, the error below says it)
                log.warning("%s: no images (%s) in this folder", path, ", ".join(IMAGE_SUFFIXES))
            paths += found
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            paths += read_path_list(path)
        elif path.is_file():
            paths.append(path)
        elif _GLOB_CHARS & set(str(spec)):
            matches = sorted(Path(p) for p in glob.glob(any_case_suffix(str(spec)), recursive=True))
            if not matches:
                raise MaskwatchError(f"{spec}: no files match this pattern")
            warn_unread(matches, str(spec))
            # ('**' follows linked folders: one that leads back up repeats every file under it, 40 levels deep)
            images = one_path_per_file([p for p in matches if p.suffix.lower() in IMAGE_SUFFIXES], str(spec))
            paths += without_broken_links(images, str(spec))
        else:
            raise MaskwatchError(f"{spec}: no such file or folder (give images, folders, a .txt list of paths "
                                 f"or a quoted glob such as 'photos/**/*.jpg')")
    unique = one_path_per_file(paths, name_some(specs, 3))
    if not unique:
        records = [p for spec in specs if Path(spec).is_dir() for p in Path(spec).rglob("*") if is_record_file(p)]
        hint = (f"; {records[0].parent} holds TFRecord files, which embed their images: `maskwatch convert "
                f"{records[0].parent} FOLDER --to voc` writes them out as files" if records else "")
        raise MaskwatchError(f"{', '.join(map(str, specs))}: no images found (looked for "
                             f"{', '.join(IMAGE_SUFFIXES)}); nothing to do{hint}")
    return keep_listed(unique, only) if only is not None else unique


def one_path_per_file(paths: list[Path], where: str) -> list[Path]:
    """Each file once, named by a path without links where there is one (a link beside its target, a linked
    folder that leads back up), else by the shortest, where that name comes in the order given; said when links
    made a file appear under two names (the same path given twice is not worth a word)."""
    reals = [path.resolve() for path in paths]
    groups: dict[Path, list[Path]] = {}
    for path, real in zip(paths, reals):
        groups.setdefault(real, []).append(path)

    def key(path: Path) -> tuple:
        return os.path.realpath(path) != os.path.abspath(path), len(path.parts), str(path)

    chosen = {real: min(group, key=key) for real, group in groups.items()}
    unique, placed = [], set()
    for path, real in zip(paths, reals):
        if real not in placed and str(path) == str(chosen[real]):
            placed.add(real)
            unique.append(path)
    merged = [(group, chosen[real]) for real, group in groups.items() if len({str(p) for p in group}) > 1]
    if merged:
        group, best = merged[0]
        other = next(p for p in group if str(p) != str(best))
        log.warning("%s: %d file(s) reached by more than one path, through links; each is taken once, by its own "
                    "name (e.g. %s, not %s)", where, len(merged), best, other)
    return unique


def keep_listed(paths: list[Path], names_file: Path) -> list[Path]:
    """The paths `names_file` names: a line with a folder in it (trip1/IMG_0001.jpg) chooses, among the inputs of
    that name, those whose path ends so (or that it names from here or from the list's folder); where it matches
    no input's path, or has no folder, it names every input of its stem (as `data split` writes them). Lines that
    match nothing are reported."""
    from maskwatch.data.split import read_list

    if not names_file.is_file():
        read_list(names_file)  # (says there is no such file)
    lines = {line.strip().replace("\\", "/") for line in read_text_file(names_file).splitlines() if line.strip()}
    lines = {line.removeprefix("./") for line in lines}
    by_path = {line for line in lines if "/" in line}
    resolved = {Path(where / line).resolve(): line for line in by_path for where in (Path("."), names_file.parent)}

    def ends_named(path: Path) -> set[str]:
        parts = path.as_posix().split("/")
        ends = {"/".join(parts[-k:]) for k in range(2, len(parts) + 1)} & by_path
        named = resolved.get(path.resolve())
        return ends | {named} if named else ends

    chosen = {path: ends_named(path) for path in paths}
    used_paths = set().union(*chosen.values()) if chosen else set()
    stems = {stem_of(line) for line in lines - used_paths}  # (a path matching no input's path: its stem)
    matched = {path: named | ({path.stem} if path.stem in stems else set()) for path, named in chosen.items()}
    kept = [path for path, named in matched.items() if named]
    found = set().union(*matched.values()) if matched else set()
    missing = sorted(line for line in lines if line not in found and stem_of(line) not in found)
    if not kept:
        raise MaskwatchError(f"{names_file}: none of its {len(lines)} names is among the {len(paths)} input images; "
                             f"give the folder that holds them")
    if missing:
        log.warning("%s: %d of its names are not among the inputs, e.g. %s", names_file, len(missing),
                    ", ".join(missing[:3]))
    return kept


def output_names(paths: Sequence[Path | str]) -> list[str]:
    """A name per input for what is written about it (the annotated copy, a prediction's `image`): its file name
    where that is unique among the inputs, else the shortest end of its path that is (`a/x.jpg`, `b/x.jpg`)."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]  # a link is named as itself, not as its target
    names = [""] * len(parts)
    pending, k = list(range(len(parts))), 1
    while pending:
        counts = Counter(own[-k:] for own in parts)
        still = []
        for i in pending:
            if counts[parts[i][-k:]] == 1 or k >= len(parts[i]):
                names[i] = "/".join(parts[i][-k:])
            else:
                still.append(i)
        pending, k = still, k + 1
    return names


def numbered_name(name: str, taken: Callable[[str], bool]) -> str:
    """`name` with -2, -3 ... before its suffix (IMG_1.jpg -> IMG_1-2.jpg, a/x.heic -> a/x-2.heic): the first that
    `taken` does not refuse."""
    stem, suffix, k = Path(name).stem, Path(name).suffix, 2
    while taken(new := Path(name).with_name(f"{stem}-{k}{suffix}").as_posix()):
        k += 1
    return new


def copy_names(names: Sequence[str], say: bool = True) -> list[str]:
    """`names` (output_names) with those renamed whose annotated copy would take another's file name: the copy of
    IMG_1.heic is IMG_1.heic.jpg (annotated_copy_name), as is that of an IMG_1.heic.jpg among the inputs (names are
    compared as a file system that ignores case would: macOS's, Windows'). A copy under its input's own name keeps
    it; the other input is renamed IMG_1-2.heic (its copy IMG_1-2.heic.jpg), said (`say`) where the copies are
    written."""
    def key(name: str) -> str:
        return annotated_copy_name(name).casefold()

    out, claimed, taken = list(names), set(), {key(name) for name in names}
    for i in sorted(range(len(names)), key=lambda i: annotated_copy_name(names[i]) != names[i]):  # own names first
        if key(names[i]) in claimed:
            out[i] = numbered_name(names[i], lambda new: key(new) in taken)
            if say:
                log.warning("the annotated copy of %s is %s: %s is another input's copy", one_line(names[i]),
                            one_line(annotated_copy_name(out[i])), one_line(annotated_copy_name(names[i])))
            taken.add(key(out[i]))
        claimed.add(key(out[i]))
    return out


def check_copies_apart(paths: Sequence[Path], folder: Path, what: str, instead: str,
                       written: set[str] | None = None) -> None:
    """Refuse, before any work, a folder of annotated copies where a copy would replace an input, or any file in a
    folder that holds inputs (`--out` naming the input folder; an IMG_1.heic's copy IMG_1.heic.jpg where the user
    keeps a photo of that name): the originals would be lost. With `written` (the copies an earlier run recorded
    there, `written_copies`; empty where none), any existing file but those is refused too: `detect --out` may
    name a folder of the user's own photos. `what`: the option as given; `instead`: what to do."""
    inputs = {Path(path).resolve() for path in paths}
    input_folders = {path.parent for path in inputs}
    unrecorded: list[str] = []
    for path, name in zip(paths, copy_names(output_names(paths), say=False)):
        copy = annotated_copy_name(name)
        target = Path(folder) / copy
        if not target.exists():
            continue
        real = target.resolve()
        if written is not None and copy in written and real not in inputs:
            continue  # (a copy an earlier run wrote: written over)
        if real == Path(path).resolve():
            raise MaskwatchError(f"{what}: the annotated copy of {path} would replace it (the inputs are there); "
                                 f"{instead}")
        if real in inputs or real.parent in input_folders:
            raise MaskwatchError(f"{what}: the annotated copy of {path} would replace {target}, a file beside the "
                                 f"inputs (an earlier run's copy? delete it to write it again); {instead}")
        if written is not None:
            unrecorded.append(str(target))
    if unrecorded:
        raise MaskwatchError(f"{what}: {len(unrecorded)} annotated cop(ies) would replace files maskwatch has no "
                             f"record of writing there ({name_some(unrecorded, 3)}): photos of yours, or copies by a "
                             f"version that did not record them (delete those, or the folder, to write them again); "
                             f"{instead}")


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Refuse, before any work, a folder to write into that cannot be one: a file, a link to nothing, a path under
    a file, or a place nothing can be written to (`check_writable`); a folder that exists or can be made passes
    (nothing is made here). Else the error would come after the load, training or scoring, as a traceback."""
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise MaskwatchError(f"{option} {folder} is a link to nothing ({os.readlink(folder)}); give another path")
    if folder.exists() and not folder.is_dir():
        raise MaskwatchError(f"{option} {folder} is a file: it names a folder to write into; give another path")
    existing = next(p for p in [folder.absolute(), *folder.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise MaskwatchError(f"{option} {folder}: {existing} is a file, so no folder can be made under it")
    check_writable(folder, f"{option} {folder}")


def check_outside_images(folder: Path, data: Path, fmt: str | None = None, option: str = "--out") -> None:
    """Refuse an output folder where a load of the data set `data` searches for pictures (`folders_read_for_images`):
    the plots written there would be read as pictures of it (background images, or unannotated ones) next time."""
    from maskwatch.data.formats import folders_read_for_images

    place = Path(folder).resolve()
    for images in folders_read_for_images(Path(data), fmt):
        searched = images.resolve()
        if place == searched or searched in place.parents:
            raise MaskwatchError(f"{option} {folder} is in {images}, where a load of {data} looks for its pictures: "
                                 f"what is written there would be read as pictures of it next time; write to a "
                                 f"folder outside it")


def check_writable(folder: Path, what: str) -> None:
    """Try a file in `folder`, or where it does not exist yet in the nearest folder above it (nothing is made),
    so a place nothing can be written to is said before any work rather than after every input was processed;
    MaskwatchError naming `what` (e.g. "--out out/x.mp4")."""
    import tempfile

    place = Path(folder).absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        if not place.is_dir():
            raise NotADirectoryError(20, f"{place} is a file")
        with tempfile.TemporaryFile(dir=place):
            pass
    except OSError as exc:
        raise MaskwatchError(f"{what}: cannot write into {folder} ({exc.strerror or exc}); give a place you can "
                             f"write to") from None
