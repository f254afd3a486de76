"""`downloads`: fetch HTTP(S) URLs into files of the target (yip's Download).

Mode and owner as `files` has them (SPEC 7.2, 7.10): 0644 root:root for a new file, an
existing file keeps what `permissions`/`owner`/`group` do not set, `owner_string` is
looked up in the target's /etc/passwd and /etc/group. A `path` ending in `/` (or naming
an existing directory, as yip's downloader treats it) gets the file name from the last
segment of the URL's path.

The body is streamed into the temp file beside the destination (`.NAME.edgeinit-new`)
while its digest is computed; only when it differs from the file's current content is
it renamed over it, so a second run that downloads the same bytes changes nothing. A
failed download (HTTP error, timeout, a cut-off body, a full disk) fails the entry,
names the URL, leaves the existing file as it was and no temp file behind.

Bounds: the connection and every read give up after EDGEINIT_FETCH_TIMEOUT (at most
30 s) without progress (SPEC 8), or after the entry's `timeout` when that is shorter;
a `timeout` also bounds the whole download (yip: the HTTP client's total timeout).
TLS certificates are verified; proxies come from the environment, as with yip.

Dry run: the URL is fetched read-only (nothing is written anywhere), so the report says
whether the file would change and, for a small text body, shows the diff; a larger
body is summarised by its size. This keeps `changed: false` truthful for a file that is
already current and shows an unreachable URL as the failure the real run would have.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator

from edgeinit.model import Record, spec
from edgeinit.plugins.base import Context, Plugin, PluginError
from edgeinit.plugins.files import decimal_mode_hint, owner_ids
from edgeinit.target import fs, ids
from edgeinit.target.changes import Change, DownloadFile
from edgeinit.target.plan import DEFAULT_FILE_MODE, plan_attrs, plan_dirs
from edgeinit.target.root import PathError

CHUNK = 256 * 1024
PREVIEW_LIMIT = 64 * 1024  # bodies up to this size are kept for the dry-run diff


class Download(Record):
    path: str = spec("", doc="Destination; a path ending in / takes the name from the URL.")
    url: str = spec("", doc="HTTP(S) URL to fetch.")
    permissions: int | None = spec(None, ge=0, le=0o7777, doc="File mode (0644 when unset).")
    owner: int | None = spec(None, ge=0, doc="Owner uid.")
    group: int | None = spec(None, ge=0, doc="Group gid.")
    owner_string: str = spec("", aliases=("ownerstring",), doc='"user" or "user:group".')
    timeout: int = spec(0, ge=0, doc="Seconds; 0 means the default bound.")


class Args(Record):
    downloads: list[Download] = spec(factory=list, doc="Files to download.")


def shown_url(url: str) -> str:
    """`url` with a password in it (`https://user:secret@host/`) masked."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:********@{host}"))


def name_from_url(url: str) -> str:
    """The file name a URL gives (its path's last segment, percent-decoded)."""
    from urllib.parse import unquote, urlsplit

    name = unquote(urlsplit(url).path.rpartition("/")[2])
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise PluginError(f"cannot take a file name from the URL {shown_url(url)} "
                          "(its path has no usable last segment); give the file name in path")
    return name


def _split_credentials(url: str) -> tuple[str, str]:
    """`url` without `user:password@`, and the Basic Authorization header they make."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url, ""
    if parts.username is None:
        return url, ""
    import base64

    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return bare, "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


class Body:
    """An open HTTP(S) response read in chunks, within the bounds of the module doc."""

    def __init__(self, url: str, timeout: int) -> None:
        import time

        from edgeinit.config.fetch import fetch_timeout

        self.url = url
        self.shown = shown_url(url)
        self.idle = fetch_timeout() if not timeout else min(fetch_timeout(), float(timeout))
        self.deadline = time.monotonic() + timeout if timeout else None
        self.size = 0
        self.digest = hashlib.sha256()
        self.preview: bytearray | None = bytearray()
        self._response = self._open()

    def _fail(self, why: str) -> PluginError:
        return PluginError(f"cannot fetch {self.shown}: {why}")

    def _open(self):
        import http.client
        import urllib.error
        import urllib.request

        from edgeinit import __version__
        from edgeinit.log import log

        if not self.url.lower().startswith(("http://", "https://")):
            raise PluginError(f"cannot fetch {self.shown}: only http:// and https:// URLs "
                              "can be downloaded")
        log.info("downloading %s (gives up after %g s without progress)", self.shown,
                 self.idle)
        url, authorization = _split_credentials(self.url)
        request = urllib.request.Request(url, headers={"User-Agent": f"edgeinit/{__version__}"})
        if authorization:  # as Go's client does; never sent on to a redirect's target
            request.add_unredirected_header("Authorization", authorization)
        try:
            return urllib.request.urlopen(request, timeout=self.idle)
        except urllib.error.HTTPError as e:
            e.close()
            raise self._fail(f"HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                reason = f"no response within {self.idle:g} s"
            raise self._fail(str(reason)) from None
        except TimeoutError:
            raise self._fail(f"no response within {self.idle:g} s") from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise self._fail(str(e) or type(e).__name__) from None

    def chunks(self) -> Iterator[bytes]:
        """The body, chunk by chunk (digest, size and a small preview kept on the way)."""
        import http.client
        import time

        response = self._response
        try:
            while True:
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise self._fail("not complete within the entry's timeout")
                try:
                    chunk = response.read1(CHUNK)  # what has arrived: a trickle still ends
                except TimeoutError:
                    raise self._fail(f"no data for {self.idle:g} s") from None
                except (OSError, http.client.HTTPException, ValueError) as e:
                    raise self._fail(str(e) or type(e).__name__) from None
                if not chunk:
                    break
                self.size += len(chunk)
                self.digest.update(chunk)
                if self.preview is not None:
                    self.preview += chunk
                    if len(self.preview) > PREVIEW_LIMIT:
                        self.preview = None
                yield chunk
            missing = response.length  # announced by Content-Length and never sent
            if missing:
                raise self._fail(f"the connection closed {missing} bytes before the end "
                                 "of the body")
        finally:
            response.close()

    def drain(self) -> None:
        for _ in self.chunks():
            pass

    def close(self) -> None:
        self._response.close()


def file_digest(ctx: Context, host: str) -> tuple[str, bytes | None]:
    """sha256 of a file's current content (as the dry-run overlay has it), and the
    content itself when it is small enough to diff."""
    if ctx.dry_run:
        data = ctx.root.read_bytes(host) or b""
        return hashlib.sha256(data).hexdigest(), data if len(data) <= PREVIEW_LIMIT else None
    digest = hashlib.sha256()
    with open(host, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), None


def plan(args: Args, ctx: Context) -> Iterator[Change]:
    """Each entry on its own: one that fails is named, the others still run."""
    for entry in args.downloads:
        try:
            yield from _plan_one(entry, ctx)
        except (PluginError, PathError, ids.LookupError_) as e:
            ctx.fail(f"{entry.path or '(no path)'}: {e}")
        except OSError as e:  # the temp file beside it could not be written (full disk)
            ctx.fail(f"{entry.path}: cannot write the download of {shown_url(entry.url)}: "
                     f"{e.strerror or e}; the file is left as it was")


def _plan_one(entry: Download, ctx: Context) -> Iterator[Change]:
    root = ctx.root
    if not entry.path:
        raise PluginError("a download needs a path")
    url = ctx.render(entry.url).strip()
    if not url:
        raise PluginError("a download needs a url")
    path = ctx.render(entry.path)
    host = root.resolve(path)
    st = root.state(host)
    if path.endswith("/") or (st is not None and st.kind == "dir"):
        path = posixpath.join(path, name_from_url(url))
        host = root.resolve(path)
        st = root.state(host)
    if st is not None and st.kind == "dir":
        raise PathError(f"'{path}' is a directory")
    if st is not None and st.kind != "file":
        raise PathError(f"'{path}' is not a regular file")
    if entry.permissions is not None:
        hint = decimal_mode_hint(entry.permissions)
        if hint:
            ctx.warn(f"{path}: {hint}")
    uid, gid = owner_ids(ctx, entry.owner, entry.group, entry.owner_string)
    body = Body(url, entry.timeout)  # an unreachable URL fails here, before any mkdir
    try:
        if st is None:
            parent = posixpath.dirname(root.display(host)) or "/"
            yield from plan_dirs(root, parent, 0o755, uid or 0, gid or 0)  # applied at once
        staged = ""
        if ctx.dry_run:  # read-only: see the module doc
            body.drain()
        else:
            staged = fs.stage_stream(host, body.chunks())
    finally:
        body.close()
    try:
        old_digest, old = file_digest(ctx, host) if st is not None else ("", None)
    except BaseException:
        fs.discard_staged(staged)
        raise
    if st is not None and old_digest == body.digest.hexdigest():
        fs.discard_staged(staged)
        yield from plan_attrs(root, path, host, st, entry.permissions, uid, gid)
        return
    if st is None:
        mode = DEFAULT_FILE_MODE if entry.permissions is None else entry.permissions
        new_uid, new_gid = uid or 0, gid or 0
    else:
        mode = st.mode if entry.permissions is None else entry.permissions
        new_uid = st.uid if uid is None else uid
        new_gid = st.gid if gid is None else gid
    preview = bytes(body.preview) if body.preview is not None else None
    yield DownloadFile(path, host, shown_url(url), staged, body.size, mode, new_uid, new_gid,
                       st, preview, old)


PLUGIN = Plugin("downloads", Args, plan)
