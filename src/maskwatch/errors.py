"""One exception type for everything a user can cause, so the CLI can print it without a traceback."""


class MaskwatchError(Exception):
    """A problem with the user's input (file, URL, label, option); the message names the input and the fix."""


def name_some(items, limit: int = 5) -> str:
    """The first `limit` items, comma-separated, and how many more: how messages name a long list of files."""
    items = [str(item) for item in items]
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def utf8_text(text: str) -> str:
    """Text that can be written as UTF-8 (a Parquet string, a terminal). A file name need not be UTF-8 (an old
    archive's Latin-1 bytes, which Python keeps as surrogates): such bytes become \\xNN."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate that is no escaped byte
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(text: str) -> str:
    """Text shown on one line of a list: control characters in a file name (a newline) written as escapes, so
    one entry never reads as two, and bytes that are not UTF-8 as \\xNN."""
    text = utf8_text(text)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class TooManyPixels(MaskwatchError):
    """An image or frame over the pixel limit (data/images.check_pixels); callers that probe a file tell it apart
    from "not an image"."""


def install_hint(extra: str, checkout: str | None = None, first: str = "") -> str:
    """How to add an optional extra. maskwatch is not on PyPI, so `pip install 'maskwatch[x]'` would fail (or
    fetch a stranger's package): name the checkout's way (`checkout`, default an editable install) and the
    wheel's, with what to install `first` there."""
    from maskwatch.version import __version__

    checkout = checkout or f".venv/bin/pip install -e '.[{extra}]'"
    return (f"in a checkout `{checkout}`; with the wheel {first}`pip install "
            f"'dist/maskwatch-{__version__}-py3-none-any.whl[{extra}]'` (README, \"Install as a package\")")
