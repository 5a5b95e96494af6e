"""The one redaction step: every value or text that leaves the process (files, MLflow params, tags
and artifacts, the terminal, error messages) passes through `redact` or `redact_text` first.

Two kinds of secret are hidden: the value of any key that names a credential (password, token,
secret, *_key) and the password of a URL (`http://user:pass@host` -> `http://user:***@host`,
`postgresql://u:p@db/x`). Pure and light: config errors use it before anything heavy is imported.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any, TextIO

REDACTED = "***"
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|(^|_)key)$", re.IGNORECASE)
# scheme://user:password@host — the password ends at the last '@' before the host part.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'\"]*:)(?P<password>[^\s/'\"]*)(?=@)")
# ...?password=...&token=... in a URL's query
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:password|passwd|secret|token|api_key|access_key)=)(?P<value>[^&\s'\"]+)", re.IGNORECASE
)


def redact_text(text: str) -> str:
    """`text` with every URL password and secret query parameter replaced by ***."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m["head"] + (REDACTED if m["password"] else ""), text)
    return _QUERY_SECRET.sub(lambda m: m["head"] + REDACTED, text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of `value` (mappings and lists at any depth) with credentials hidden: values of keys
    that name one, and passwords inside any string."""
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, key) for v in value)
    leaf = key.rsplit(".", 1)[-1]
    if leaf and _SECRET_KEY.search(leaf) and value not in (None, ""):
        return REDACTED
    return redact_text(value) if isinstance(value, str) else value


def is_redacted(value: Any) -> bool:
    """Whether a (saved) value had a secret taken out of it."""
    return isinstance(value, str) and (value == REDACTED or f":{REDACTED}@" in value or f"={REDACTED}" in value)


def restore(saved: Any, given: Any) -> Any:
    """The full value of a saved, redacted setting: `given` when it hides to exactly `saved`
    (the same URL with its password), else `saved` unchanged."""
    return given if isinstance(given, str) and isinstance(saved, str) and redact(given) == saved != given else saved


class RedactingStream(io.TextIOBase):
    """A text stream that redacts every line before it reaches `target` (the terminal)."""

    def __init__(self, target: TextIO, name: str = "stdout") -> None:
        self.target, self.name = target, name
        self._partial = ""

    def __reduce__(self) -> tuple[Any, tuple[Any, str]]:
        # Pickled (Ray Tune pickles its callbacks, and the progress view's stream with them) as
        # what it stands for: this process's sys.stdout or sys.stderr.
        import sys

        return getattr, (sys, self.name)

    def write(self, text: str) -> int:
        self._partial += text
        if "\n" in self._partial:
            lines, self._partial = self._partial.rsplit("\n", 1)
            self.target.write(redact_text(lines + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.target.write(redact_text(self._partial))
            self._partial = ""
        self.target.flush()

    def fileno(self) -> int:
        return self.target.fileno()

    def isatty(self) -> bool:
        return self.target.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")
