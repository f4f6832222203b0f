"""Credentials taken out of URIs before they reach an error message or a repr.

pyarrow reads credentials from a URI's user info (``s3://KEY:SECRET@bucket/...``) and
from its query options (``?access_key=...&secret_key=...&session_token=...``). Such a
URI is what the user gave, so messages and reprs quote it; they go to logs, tracebacks
and notebooks, and must not carry the secrets with them.
"""

from __future__ import annotations

import re
import urllib.parse

_SECRET_PARAMS = {"access_key", "secret_key", "session_token"}


def redact(uri: str) -> str:
    """``uri`` without credentials: user info and secret query options become ``***``.

    Args:
        uri: a URI, or any other string (returned as it is when it holds no secrets).

    Returns:
        ``uri`` with its user info and the values of secret query options replaced.

    Example:
        >>> redact("s3://AKID:shh@b/k?secret_key=shh&region=eu-west-1")
        's3://***@b/k?secret_key=***&region=eu-west-1'
    """
    base, sep, query = re.sub(r"^([A-Za-z][\w+.-]*://)[^/@?]*@", r"\1***@", uri).partition("?")
    if not sep:
        return base
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    shown = [(k, "***" if k in _SECRET_PARAMS else v) for k, v in pairs]
    return base + "?" + urllib.parse.urlencode(shown, safe="*:/")
