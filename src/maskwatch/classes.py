"""The one place that names classes, maps them between schemes and gives them colours."""

from __future__ import annotations

import functools
import logging
import re
import shlex

from maskwatch.errors import MaskwatchError

log = logging.getLogger(__name__)

MASK_CLASSES: tuple[str, ...] = ("with_mask", "without_mask", "mask_weared_incorrect")
WITH_MASK, WITHOUT_MASK, WRONG_MASK = MASK_CLASSES
TWO_CLASSES: tuple[str, ...] = ("mask", "no_mask")

# 2-class view: a mask worn wrongly protects no better than none.
TO_TWO_CLASSES: dict[str, str] = {
    "with_mask": "mask",
    "without_mask": "no_mask",
    "mask_weared_incorrect": "no_mask",
}

# BGR colours: green for a correct mask, red for none, orange for a mask worn wrongly.
CLASS_COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "with_mask": (60, 180, 60),
    "without_mask": (40, 40, 230),
    "mask_weared_incorrect": (0, 150, 255),
    "mask": (60, 180, 60),
    "no_mask": (40, 40, 230),
    "face": (230, 160, 30),
}
FALLBACK_COLOUR_BGR = (200, 200, 200)

# Short names for drawing: labels must not hide the 20-px faces they describe.
DISPLAY_NAMES: dict[str, str] = {"with_mask": "mask", "without_mask": "no mask", "mask_weared_incorrect": "wrong",
                                 "no_mask": "no mask"}


# Names for people reading a page (the web pages' counts and legends, where there is room for more words).
READABLE_NAMES: dict[str, str] = {"with_mask": "mask worn", "without_mask": "no mask",
                                  "mask_weared_incorrect": "mask worn wrongly", "mask": "mask", "no_mask": "no mask"}


@functools.lru_cache(maxsize=1024)
def meaning_of(name: str) -> str | None:
    """Which of the three mask classes a model's class stands for: itself, `mask` / `no_mask` (the 2-class
    names), or what another name gives away (`masked`, `face_nomask`, `incorrect`, `chin`); None when the name
    says nothing about a mask. A model trained on the user's own class names is read through this, so its
    compliance, alerts, colours and batch counts follow what its classes mean. Kept per name: video asks it for
    every track and frame, and a custom name is read by regular expressions."""
    return name if name in MASK_CLASSES else likely_mask_class(name)


def class_meaning(classes: list[str], meaning: str) -> str | None:
    """The one class of `classes` that stands for a mask class (`mask` for with_mask); None if none or several."""
    found = [name for name in classes if meaning_of(name) == meaning]
    return found[0] if len(found) == 1 else None


def is_unmasked(name: str) -> bool:
    """Whether people of this class raise an alert (`person.unmasked`): no mask, or a mask that does not cover nose
    and mouth."""
    return meaning_of(name) in (WITHOUT_MASK, WRONG_MASK)


def colour_of(name: str) -> tuple[int, int, int]:
    """The BGR colour boxes of this class are drawn in: that of the mask class it stands for (grey if none)."""
    meaning = meaning_of(name)
    return CLASS_COLOURS_BGR.get(name) or CLASS_COLOURS_BGR.get(meaning or "", FALLBACK_COLOUR_BGR)


def classes_to_list(people: dict[str, int]) -> list[str]:
    """The classes a count of people lists: the three mask classes in their order, zeros included (a database holds
    only the classes someone was counted in); a model of other classes: the classes it counted, without the three."""
    if set(people) <= set(MASK_CLASSES):
        return list(MASK_CLASSES)
    return [*(c for c in MASK_CLASSES if c in people), *(c for c in people if c not in MASK_CLASSES)]


def by_meaning(counts: dict[str, int]) -> dict[str, int]:
    """Counts per mask class, each of a model's classes added to the one it stands for (`mask` to with_mask):
    batch's count columns, the same for every model. A class that stands for none is in no column."""
    totals = dict.fromkeys(MASK_CLASSES, 0)
    for name, n in counts.items():
        meaning = meaning_of(name)
        if meaning is not None:
            totals[meaning] += n
    return totals


def compliance_of(people: dict[str, int]) -> float | None:
    """Share of people wearing a mask correctly: None when nobody was seen, or when some were counted in a class
    whose name does not say whether they wear one (`classes_not_understood`)."""
    total = sum(people.values())
    if not total or any(n and meaning_of(name) is None for name, n in people.items()):
        return None
    return sum(n for name, n in people.items() if meaning_of(name) == WITH_MASK) / total


def classes_not_understood(classes: list[str]) -> str | None:
    """What a model's classes leave unknown, said once where video starts: a class whose name says nothing about a
    mask makes compliance unknown while someone is counted in it, and a model with no class meaning "no mask"
    raises no alert. None when all is well."""
    unknown = [name for name in classes if meaning_of(name) is None]
    problems = []
    if unknown:
        problems.append(f"compliance is left unknown while someone is counted in {', '.join(map(repr, unknown))} "
                        f"(the name says nothing about a mask)")
    if not any(is_unmasked(name) for name in classes):
        problems.append("no class means a missing or wrongly worn mask, so no person.unmasked alert is raised")
    if not problems:
        return None
    return (f"the model's classes ({', '.join(classes)}): " + "; ".join(problems) + f". Names read: "
            f"{', '.join(MASK_CLASSES)}, {', '.join(TWO_CLASSES)}, or names that say it (masked, no_mask, "
            f"incorrect); `train --label-map OLD=NEW` renames a data set's classes")


@functools.lru_cache(maxsize=None)
def say_what_classes_leave_unknown(classes: tuple[str, ...]) -> None:
    """A model of the user's own classes whose names do not say what they mean: warned once per process, where
    video or the server starts (a server's camera restarts its pipeline after a lost stream)."""
    problem = classes_not_understood(list(classes))
    if problem:
        log.warning(problem)


DROP_LABEL = ""  # what `--label-map OLD=` maps OLD to: its boxes are left out


def likely_mask_class(label: str) -> str | None:
    """The mask class another tool's label most likely means (`no_mask`, `Mask`, `incorrect`, `face_with_mask`,
    `mask_below_nose`, `MaskOff`); None when the name says nothing about a mask (`helmet`, `no_face`, `not_sure`)."""
    words = [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+", label)]  # (CamelCase split too)
    key = "".join(words)
    about_a_mask = "mask" in key
    nose_covered = (re.search(r"cover(s|ed|ing)?(the)?nose|nosecovered", key)
                    and not re.search(r"(un|not|nt|no)cover|nose(out|exposed|visible|uncovered)|notnose", key))
    if (any(word in key for word in ("incorrect", "wrong", "improper", "weared", "chin", "partial"))
            or ("nose" in key and not nose_covered)
            or (re.search(r"below|under", key) and re.search(r"nose|chin|mouth|mask", key))
            or ({"not"} & set(words) and "properly" in key)):
        return WRONG_MASK
    if ({"bare", "unmasked", "maskless", "nomask"} & set(words)
            or ({"no", "not", "non", "without", "off", "none"} & set(words) and about_a_mask)
            or any(word in key for word in ("without", "nomask", "nonmask", "notmask", "unmask", "maskless"))
            or (about_a_mask and any(word in key for word in ("notworn", "notwearing", "maskoff")))):
        return WITHOUT_MASK
    return WITH_MASK if about_a_mask else None


def label_map_hint(labels) -> str:
    """`--label-map OLD=NEW ...` for the labels whose mask class their name gives away ('' when none does)."""
    pairs = [(label, likely_mask_class(label)) for label in labels]
    return " ".join(f"--label-map {shlex.quote(f'{label}={target}')}" for label, target in pairs
                    if target and target != label)


def parse_label_map(pairs: list[str] | None) -> dict[str, str]:
    """Parse `old=new` options (e.g. from `--label-map`) into a renaming dict; `old=` (nothing after the `=`)
    maps to DROP_LABEL: boxes of that label are left out (a `helmet` or `person` class the mask detector has no use
    for)."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip():
            raise MaskwatchError(f"--label-map expects OLD=NEW (or OLD= to leave OLD's boxes out), got {pair!r}")
        if "=" in new:  # (`--label-map a=x,b=y`: --classes takes commas, this takes one renaming each)
            raise MaskwatchError(f"--label-map {pair!r}: one OLD=NEW each; give --label-map once per label")
        old, new = old.strip(), new.strip()
        if mapping.get(old, new) != new:  # (the last would win, silently)
            raise MaskwatchError(f"--label-map renames {old!r} twice: to {mapping[old]!r} and to {new!r}")
        mapping[old] = new
    return mapping


def parse_class_list(text: str | None) -> list[str] | None:
    """Parse `--classes a,b,c` into the class list (order kept), or None when not given."""
    if text is None:
        return None

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise MaskwatchError(f"--classes expects distinct names separated by commas, e.g. "
                             f"{','.join(MASK_CLASSES)}; got {text!r}")
    return names
