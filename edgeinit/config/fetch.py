"""HTTP(S) GET with a bound on waiting and TLS verified. Imported only when a URL is used."""

from __future__ import annotations

import os

from edgeinit.log import log

MAX_TIMEOUT = 30.0  # SPEC 8: a fetch gives up after at most 30 s without progress


class FetchError(Exception):
    """A URL that could not be fetched; the message names it."""


def fetch_timeout(default: float = MAX_TIMEOUT) -> float:
    """Seconds without progress before a fetch gives up: EDGEINIT_FETCH_TIMEOUT, max 30."""
    try:
        value = float(os.environ.get("EDGEINIT_FETCH_TIMEOUT", default))
    except ValueError:
        value = default
    return min(value, MAX_TIMEOUT) if value > 0 else default


def fetch(url: str, *, timeout: float | None = None, limit: int = 16 * 1024 * 1024) -> bytes:
    """The body of `url`. Gives up after `timeout` seconds without progress."""
    timeout = fetch_timeout() if timeout is None else timeout
    import urllib.error
    import urllib.request

    from edgeinit import __version__

    log.info("fetching %s (gives up after %g s without progress)", url, timeout)
    request = urllib.request.Request(url, headers={"User-Agent": f"edgeinit/{__version__}"})
    import http.client

    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(limit + 1)
            expected = response.length  # bytes the server announced and did not send
        if expected and len(body) <= limit:
            raise FetchError(f"cannot fetch {url}: the connection closed {expected} bytes "
                             "before the end of the body")
    except urllib.error.HTTPError as e:
        raise FetchError(f"cannot fetch {url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise FetchError(f"cannot fetch {url}: {e.reason}") from None
    except TimeoutError:
        raise FetchError(f"cannot fetch {url}: no response within {timeout:g} s") from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise FetchError(f"cannot fetch {url}: {e or type(e).__name__}") from None
    if len(body) > limit:
        raise FetchError(f"cannot fetch {url}: larger than {limit} bytes")
    return body
