"""One exception type for everything a user can cause, so the CLI can print it without a traceback."""


class MaskwatchError(Exception):
    """A problem with the user's input (file, URL, label, option); the message names the input and the fix."""
