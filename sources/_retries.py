"""Retries of transient object-storage failures, and errors that name what was read.

A busy or restarting object store answers HTTP 500/503 or ``SlowDown``, and connections
get reset; such a request succeeds when it is made again a little later. pyarrow raises
every failure as an `OSError` carrying the service's message, so the message is what
tells a transient failure from a missing object, a missing bucket or a denied access.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_TRANSIENT = re.compile(
    r"\b50[0234]\b|SlowDown|ServiceUnavailable|Service Unavailable|InternalError|"
    r"RequestTimeout|Throttl|reset by peer|Connection reset|Broken pipe|timed out|"
    r"curlCode: (?:7|18|28|52|55|56)\b|Couldn't connect|Empty reply|Recv failure",
    re.IGNORECASE,
)
RETRIES = 5  # attempts after the first
# What to check when access is denied: missing or wrong credentials are the usual cause.
_CREDENTIALS = (
    "; check the credentials this process finds (S3: AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws or the instance's role; GCS: "
    "GOOGLE_APPLICATION_CREDENTIALS or the default credentials) and the bucket's policy"
)
BACKOFF_S = 0.05  # first pause; doubled for every further attempt


def with_retries(request: Callable[[], T], name: Callable[[], str]) -> T:
    """Returns ``request()``, made again after transient failures with exponential backoff.

    Args:
        request: the call to storage; it is made again from the start after a failure.
        name: gives the name errors use for what is read (a URI without secrets); it is
            called only when an error is raised, so a successful request pays nothing.

    Returns:
        What ``request`` returned.

    Raises:
        FileNotFoundError: for a missing object or bucket.
        PermissionError: for denied access.
        OSError: for other failures, or transient ones that outlast the retries.

    Example:
        >>> failures = [OSError("HTTP 503 SlowDown")]
        >>> def request():
        ...     if failures:
        ...         raise failures.pop()
        ...     return b"data"
        >>> with_retries(request, lambda: "s3://bucket/key")
        b'data'
    """
    for attempt in range(RETRIES + 1):
        try:
            return request()
        except FileNotFoundError as error:
            raise FileNotFoundError(f"not found: {name()} ({error})") from None
        except PermissionError as error:
            raise PermissionError(f"access denied to {name()} ({error}){_CREDENTIALS}") from None
        except OSError as error:
            message = str(error)
            if _TRANSIENT.search(message) and attempt < RETRIES:
                time.sleep(BACKOFF_S * 2**attempt)
                continue
            if "NO_SUCH_BUCKET" in message or "NoSuchBucket" in message:
                raise FileNotFoundError(f"bucket not found for {name()} ({message})") from None
            if re.search(r"ACCESS_DENIED|AccessDenied|\b403\b", message):
                raise PermissionError(
                    f"access denied to {name()} ({message}){_CREDENTIALS}"
                ) from None
            raise OSError(f"reading {name()} failed: {message}") from None
    raise AssertionError("unreachable")  # the loop returns or raises
