"""What a camera's or webhook's URL may show in logs, messages, OUT.json and the database: never a password or a
token it carries; and the port it names, checked (for the sinks' URL checks)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit, urlunsplit

from maskwatch.errors import MaskwatchError


# Query keys whose values are secrets, by how the key ends (any case: access_token, accessToken, x-api-key, pwd), so
# that keys which merely hold such a word (keyframe, author, signal) are shown.
SECRET_KEY_ENDINGS = ("password", "passwd", "passphrase", "pwd", "token", "secret", "key", "auth", "authorization",
                      "sig", "signature", "credential", "credentials")


def without_password(spec: str) -> str:
    """The source as it may be shown or stored: a URL's credentials replaced by ***: the password of user:pass@,
    a lone user part (often a token: rtsp://TOKEN@host), and query values such as ?password=, ?token=, ?key=."""
    if "://" not in spec:
        return spec
    parts = urlsplit(spec)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = (f"{user.partition(':')[0]}:***" if ":" in user else "***") + f"@{host}"
    query = "&".join(f"{k}=***" if (k := pair.partition("=")[0]) and k.lower().endswith(SECRET_KEY_ENDINGS)
                     and "=" in pair else pair for pair in parts.query.split("&")) if parts.query else parts.query
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def checked_port(parts: SplitResult, option: str, url: str) -> int | None:
    """The port a URL names (None: its scheme's), or an error naming the option: urllib reads `:0` as no port
    and fails on `:99999` (every post or connect would then fail, and events wait for ever)."""
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise MaskwatchError(f"{option} {without_password(url)!r}: the port must be a number from 1 to 65535")
    return port
