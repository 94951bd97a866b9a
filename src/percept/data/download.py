"""Download, verify and unpack the registered datasets (see :mod:`percept.data.sources`).

Nothing here ever leaves a half-finished result under its final name:

- :func:`download_file` streams to a hidden temporary file beside the target, hashes while streaming and
  renames into place only after the checksum matched; a failed download never replaces an existing file.
- :func:`safe_extract` checks every member of an archive before extracting any of them.
- :func:`fetch_source` assembles a dataset in a hidden staging folder and renames it to its final name
  only when every file is downloaded, verified and unpacked, with a ``MANIFEST.json`` describing it.
- An index page (``RemoteFile.listing``) is downloaded like any file, then every file it links to in its own
  folder (:func:`listed_files`) is fetched from beside the page (so a mirror of the publisher's tree serves
  them too); each is checked against its ``Content-Length`` and its sha256 is recorded on first use.

Fault point (tests only, see :mod:`percept.faults`): ``download.after_first_chunk``, the first chunk of a
transfer written to the temporary file.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Mapping
from urllib.parse import quote, unquote, urljoin, urlsplit

from tqdm.auto import tqdm

from percept import faults
from percept.data.sources import RemoteFile, Source, get_source
from percept.h5io import remove_stale_temporaries

log = logging.getLogger(__name__)

CHUNK = 1 << 20
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


class DownloadError(RuntimeError):
    """The file could not be fetched (network error, HTTP error, connection cut short)."""


class ChecksumError(RuntimeError):
    """A downloaded file does not have the expected checksum; it was deleted."""


class UnsafeArchiveError(RuntimeError):
    """An archive member would be written outside the extraction folder; nothing was extracted."""


class CorruptArchiveError(RuntimeError):
    """An archive is truncated or corrupted."""


@dataclass(frozen=True)
class FileDigest:
    path: Path
    md5: str
    sha256: str
    size: int
    verified: bool  # checked against an expected checksum
    downloaded: bool  # False when an existing file was reused


def file_digests(path: str | os.PathLike) -> tuple[str, str]:
    """``(md5, sha256)`` of a file, read in chunks."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _mismatches(md5: str | None, sha256: str | None, got_md5: str, got_sha256: str) -> list[str]:
    out = []
    if md5 and md5.lower() != got_md5:
        out.append(f"expected md5 {md5.lower()}, got md5 {got_md5}")
    if sha256 and sha256.lower() != got_sha256:
        out.append(f"expected sha256 {sha256.lower()}, got sha256 {got_sha256}")
    return out


def _remedy(url: str, dest: Path) -> str:
    return (f"To get the file another way: set a `mirror` for the download (a base URL — http(s):// or file:// — "
            f"serving the same file names), or download {url} by hand and place it at {dest} "
            "(it is used as is when its checksum matches).")


def download_file(url: str, dest: str | os.PathLike, md5: str | None = None, sha256: str | None = None,
                  progress: bool = True, timeout: float = 60) -> FileDigest:
    """Fetch ``url`` to ``dest``, verifying the md5 and/or sha256 given.

    If ``dest`` already exists with the expected checksum (or exists and no checksum is given) it is used
    as is, so files can be placed by hand. Raises :class:`DownloadError` or :class:`ChecksumError`; in
    both cases ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        have_md5, have_sha = file_digests(dest)
        size = dest.stat().st_size
        if not (md5 or sha256):
            log.info("%s already present; no checksum known, using it as is (sha256 %s)", dest, have_sha)
            return FileDigest(dest, have_md5, have_sha, size, verified=False, downloaded=False)
        bad = _mismatches(md5, sha256, have_md5, have_sha)
        if not bad:
            log.info("%s already present with the expected checksum; not downloading it again", dest)
            return FileDigest(dest, have_md5, have_sha, size, verified=True, downloaded=False)
        log.warning("%s exists but its checksum is wrong (%s); downloading it again (the existing file is "
                    "kept until the new one is verified)", dest, "; ".join(bad))

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    md5_h, sha_h = hashlib.md5(), hashlib.sha256()
    received = 0
    log.info("downloading %s -> %s", url, dest)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "percept-downloader"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp, open(tmp, "wb") as fh:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.strip().isdigit() else None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                          disable=not progress, leave=False) as bar:
                    while chunk := resp.read(CHUNK):
                        fh.write(chunk)
                        md5_h.update(chunk)
                        sha_h.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                        if received == len(chunk):
                            faults.pause("download.after_first_chunk")
                if total is not None and received != total:
                    raise DownloadError(f"Download of {url} was cut short: received {received} of {total} bytes. "
                                        "Rerun to retry. " + _remedy(url, dest))
                fh.flush()
                os.fsync(fh.fileno())
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"Could not download {url}: HTTP {exc.code} {exc.reason}. " + _remedy(url, dest)) from exc
        except urllib.error.URLError as exc:
            raise DownloadError(f"Could not download {url}: {exc.reason}. Check the network connection. "
                                + _remedy(url, dest)) from exc
        except (http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            raise DownloadError(f"Could not download {url}: {type(exc).__name__}: {exc}. Rerun to retry. "
                                + _remedy(url, dest)) from exc
        except OSError as exc:
            raise DownloadError(f"Could not download {url} to {tmp}: {exc}. " + _remedy(url, dest)) from exc

        got_md5, got_sha = md5_h.hexdigest(), sha_h.hexdigest()
        bad = _mismatches(md5, sha256, got_md5, got_sha)
        if bad:
            kept = f" The existing {dest} was left untouched." if dest.exists() else ""
            raise ChecksumError(
                f"Checksum mismatch for {dest.name} downloaded from {url} ({received} bytes): {'; '.join(bad)}. "
                f"The download was deleted.{kept} The transfer was corrupted or the file changed upstream: rerun "
                "to retry; if you use a mirror that repackaged the file, give its sha256 in the download's "
                f"`checksums` setting ({{{dest.name}: <sha256>}}); or place a verified copy at {dest}.")
        os.replace(tmp, dest)
        remove_stale_temporaries(dest, "part")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("downloaded %s (%d bytes, sha256 %s)", dest, received, got_sha)
    return FileDigest(dest, got_md5, got_sha, received, verified=bool(md5 or sha256), downloaded=True)


# ----------------------------------------------------------------------------------------------- archives

def _member_path(name: str, archive: Path) -> PurePosixPath:
    """Normalised relative path of a member, or UnsafeArchiveError if it is absolute or escapes."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to extract anything "
                                 "from this archive.")
    parts: list[str] = []
    for part in posix.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeArchiveError(f"{archive}: member {name!r} points outside the extraction folder; "
                                         "refusing to extract anything from this archive.")
            parts.pop()
        else:
            parts.append(part)
    return PurePosixPath(*parts)


def _link_target(member: str, base: PurePosixPath, target: str, archive: Path, kind: str) -> None:
    posix = target.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {member!r} is a {kind} to the absolute path {target!r}; "
                                 "refusing to extract anything from this archive.")
    try:
        _member_path(str(base / posix) if str(base) != "." else posix, archive)
    except UnsafeArchiveError:
        raise UnsafeArchiveError(f"{archive}: member {member!r} is a {kind} to {target!r}, outside the extraction "
                                 "folder; refusing to extract anything from this archive.") from None


def _check_no_link_parents(paths: dict[str, PurePosixPath], links: set[PurePosixPath], archive: Path) -> None:
    for name, path in paths.items():
        for parent in path.parents:
            if parent in links:
                raise UnsafeArchiveError(f"{archive}: member {name!r} is written through the link {str(parent)!r}; "
                                         "refusing to extract anything from this archive.")


def _check_tar(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()  # reads every header (and, compressed, decompresses everything): finds truncation
    # A plain tar cut at a header boundary reads as a shorter archive; the end-of-archive block proves it is whole.
    tar.fileobj.seek(tar.offset)
    end = tar.fileobj.read(tarfile.BLOCKSIZE)
    if len(end) < tarfile.BLOCKSIZE or end.strip(b"\0"):
        raise CorruptArchiveError(f"{archive}: the archive has no end-of-archive marker — it is truncated. Delete it "
                                  "and rerun to download it again.")
    size = archive.stat().st_size
    plain = tar.fileobj.__class__.__name__ not in ("GzipFile", "BZ2File", "LZMAFile")
    paths: dict[str, PurePosixPath] = {}
    links: set[PurePosixPath] = set()
    for m in members:
        path = _member_path(m.name, archive)
        if m.issym():
            _link_target(m.name, path.parent, m.linkname, archive, "symbolic link")
            links.add(path)
        elif m.islnk():
            _link_target(m.name, PurePosixPath("."), m.linkname, archive, "hard link")
            links.add(path)
        elif not (m.isreg() or m.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device or special file; refusing to "
                                     "extract anything from this archive.")
        if plain and m.isreg() and m.offset_data + m.size > size:
            raise CorruptArchiveError(f"{archive}: member {m.name!r} is cut short — the archive is truncated. Delete "
                                      "it and rerun to download it again.")
        paths[m.name] = path
    _check_no_link_parents(paths, links, archive)
    return members


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    paths: dict[str, PurePosixPath] = {}
    links: set[PurePosixPath] = set()
    for info in infos:
        path = _member_path(info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            _link_target(info.filename, path.parent, zf.read(info).decode("utf-8", "replace"), archive,
                         "symbolic link")
            links.add(path)
        paths[info.filename] = path
    _check_no_link_parents(paths, links, archive)
    bad = zf.testzip()
    if bad is not None:
        raise CorruptArchiveError(f"{archive}: member {bad!r} fails its CRC check — the archive is corrupted. Delete "
                                  "it and rerun to download it again.")
    return infos


def safe_extract(archive: str | os.PathLike, out_dir: str | os.PathLike) -> list[str]:
    """Extract a tar (``.tar``, ``.tar.gz``, ``.tgz``, bz2, xz) or zip archive into ``out_dir``.

    Every member is checked first: if any would land outside ``out_dir`` (``..``, an absolute path, a link
    pointing outside, a path through a link) or is a device file, :class:`UnsafeArchiveError` is raised
    and nothing is extracted. A truncated or corrupted archive raises :class:`CorruptArchiveError`.
    Returns the member names.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    corrupt_errors = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = _check_zip(zf, archive)
                out_dir.mkdir(parents=True, exist_ok=True)
                zf.extractall(out_dir)
                return [i.filename for i in infos]
        with tarfile.open(archive, "r:*") as tar:
            members = _check_tar(tar, archive)
            out_dir.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):  # second line of defence where Python has extraction filters
                tar.extractall(out_dir, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tar.extractall(out_dir, members=members)
            return [m.name for m in members]
    except (UnsafeArchiveError, CorruptArchiveError):
        raise
    except getattr(tarfile, "FilterError", ()) as exc:  # type: ignore[misc]
        raise UnsafeArchiveError(f"{archive}: {exc}") from exc
    except corrupt_errors as exc:
        raise CorruptArchiveError(f"{archive}: cannot be read as an archive ({type(exc).__name__}: {exc}) — it is "
                                  "truncated or corrupted. Delete it and rerun to download it again.") from exc


# ------------------------------------------------------------------------------------------------ sources

def _expected(rf: RemoteFile, checksums: Mapping[str, str]) -> tuple[str | None, str | None, str]:
    """``(md5, sha256, verification)`` for one file; a user checksum overrides the published one."""
    if rf.filename in checksums:
        value = str(checksums[rf.filename]).strip().lower()
        algo, _, digest = value.rpartition(":")
        if algo not in ("", "md5", "sha256") or len(digest) not in (32, 64) or \
                any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"checksum for {rf.filename!r} must be a sha256 (64 hex digits) or md5 (32), "
                             f"optionally prefixed 'sha256:'/'md5:'; got {checksums[rf.filename]!r}")
        return (digest, None, "user") if len(digest) == 32 else (None, digest, "user")
    if rf.has_published_checksum:
        return rf.md5, rf.sha256, "published"
    return None, None, "first-use"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag.lower() == "a":
            self.hrefs += [v for k, v in attrs if k.lower() == "href" and v]


_LISTED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def listed_files(page: str | os.PathLike, rf: RemoteFile) -> list[str]:
    """The file names an index page links to in its own folder, with one of ``rf.listing``'s suffixes (sorted).

    Links are resolved against the page's official URL and only their path is compared (the Toronto pages
    link with absolute ``http://`` URLs while the pages are served over https); the files are then fetched
    from beside the page's actual URL, so links can never send the download elsewhere. Links to other
    folders, sub-folders, other suffixes or names with unusual characters are ignored."""
    parser = _Links()
    parser.feed(Path(page).read_text(encoding="utf-8", errors="replace"))
    folder = urlsplit(rf.url).path.rpartition("/")[0] + "/"
    names = set()
    for href in parser.hrefs:
        path = unquote(urlsplit(urljoin(rf.url, href.strip())).path)
        if not path.startswith(folder):
            continue
        name = path[len(folder):]
        if _LISTED_NAME.fullmatch(name) and name.lower().endswith(tuple(x.lower() for x in rf.listing)):
            names.add(name)
    return sorted(names)


def _fetch_listed(name: str, rf: RemoteFile, page: FileDigest, page_url: str, archives: Path,
                  progress: bool) -> list[tuple[str, FileDigest, dict]]:
    """Download every file an index page lists into ``archives / rf.folder``: ``(relative path, digest,
    manifest record)`` per file. Files already there are reused (a rerun resumes an interrupted download)."""
    names = listed_files(page.path, rf)
    if not names:
        raise DownloadError(f"{name}: the index page {page_url} links to no {'/'.join(rf.listing)} files in its "
                            f"folder; the publisher's page changed or the download is not an index page. Delete "
                            f"{page.path} and rerun, or place the files by hand.")
    if rf.expected_files is not None and len(names) != rf.expected_files:
        log.warning("%s: %s lists %d files, the publisher's description says %d", name, page_url, len(names),
                    rf.expected_files)
    base = page_url.rpartition("/")[0] + "/"
    official = rf.url.rpartition("/")[0] + "/"

    def one(file: str) -> tuple[str, FileDigest, dict]:
        digest = download_file(base + quote(file), archives / rf.folder / file, progress=False)
        rel = f"{rf.folder}/{file}"
        return rel, digest, {"filename": rel, "url": base + quote(file), "official_url": official + quote(file),
                             "listed_in": rf.filename, "md5": digest.md5, "sha256": digest.sha256,
                             "size": digest.size, "verification": "first-use", "verified": False,
                             "extracted": False}

    out = []
    with ThreadPoolExecutor(4) as pool, tqdm(total=len(names), desc=rf.folder, unit="file", disable=not progress,
                                             leave=False) as bar:
        for item in pool.map(one, names):
            out.append(item)
            bar.update(1)
    msg = (f"{name}: the {len(names)} files listed by {rf.filename} have no published checksums; their sha256 are "
           f"recorded in MANIFEST.json (trust on first use; their sizes matched the server's Content-Length)")
    log.warning(msg)
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _replace_dir(src: Path, dst: Path) -> None:
    if not dst.exists():
        os.rename(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old.{os.getpid()}")
    os.rename(dst, old)
    os.rename(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def fetch_source(name: str, out_dir: str | os.PathLike, *, mirror: str | None = None,
                 checksums: Mapping[str, str] | None = None, progress: bool = True,
                 archive_dir: str | os.PathLike | None = None) -> Path:
    """Download, verify and unpack every file of ``SOURCES[name]`` into ``out_dir``.

    ``mirror``: a base URL used instead of the official hosts (``mirror/filename``). ``checksums``: maps a
    file name to its sha256 (or md5), overriding the published checksum. Archives are kept in
    ``archive_dir`` (default ``out_dir.parent / "archives"``) so a rerun does not download them again.
    ``out_dir`` appears (atomically, with ``MANIFEST.json``) only when everything succeeded.
    """
    source: Source = get_source(name)
    checksums = dict(checksums or {})
    known = {rf.filename for rf in source.files}
    stray = sorted(set(checksums) - known)
    if stray:
        raise ValueError(f"checksums given for {stray}, which are not files of {name!r} (its files: {sorted(known)})")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    archives = Path(archive_dir) if archive_dir is not None else out_dir.parent / "archives"
    staging = out_dir.parent / f".{out_dir.name}.partial"

    records = []
    fetched: list[tuple[RemoteFile, FileDigest]] = []
    listed: list[tuple[str, FileDigest]] = []
    for rf in source.files:
        url = f"{mirror.rstrip('/')}/{rf.filename}" if mirror else rf.url
        md5, sha256, verification = _expected(rf, checksums)
        digest = download_file(url, archives / rf.filename, md5=md5, sha256=sha256, progress=progress)
        if verification == "first-use":
            msg = (f"{name}: {rf.filename} has no published checksum; recorded on first use (trust on first use): "
                   f"sha256 {digest.sha256}. To pin it, add it to the download's `checksums` setting: "
                   f"{{{rf.filename}: {digest.sha256}}}")
            log.warning(msg)
            if log.hasHandlers():  # logging goes elsewhere (a log file): show it on the console too
                print(f"WARNING: {msg}", file=sys.stderr)
        fetched.append((rf, digest))
        records.append({"filename": rf.filename, "url": url, "official_url": rf.url, "md5": digest.md5,
                        "sha256": digest.sha256, "size": digest.size, "verification": verification,
                        "verified": verification != "first-use", "extracted": rf.extract and rf.is_archive})
        if rf.listing:
            for rel, file_digest, record in _fetch_listed(name, rf, digest, url, archives, progress):
                listed.append((rel, file_digest))
                records.append(record)

    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        for rf, digest in fetched:
            if rf.extract and rf.is_archive:
                log.info("extracting %s", digest.path)
                safe_extract(digest.path, staging)
            else:
                _link_or_copy(digest.path, staging / rf.filename)
        for rel, file_digest in listed:
            _link_or_copy(file_digest.path, staging / rel)
        manifest = {"source": name, "description": source.description, "citation_url": source.citation_url,
                    "mirror": mirror, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": records}
        (staging / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("%s ready in %s", name, out_dir)
    return out_dir


def local_folder(path: str | os.PathLike | None, *, config_key: str = "imagenet_val",
                 what: str = "ILSVRC2012 (ImageNet) validation images") -> Path:
    """A user-provided dataset folder, checked to exist and to hold images (at most two levels down)."""
    hint = (f"Set `{config_key}` in the config to your local folder of {what} (flat JPEGs, optionally with a "
            "labels.txt, or one sub-folder per class named by WordNet id); it cannot be downloaded automatically.")
    if path is None or not str(path).strip():
        raise FileNotFoundError(f"No folder given for {what}. " + hint)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder. " + hint)
    root_depth = len(folder.parts)
    for dirpath, dirnames, filenames in os.walk(folder):
        if any(f.lower().endswith(IMAGE_SUFFIXES) for f in filenames):
            return folder
        if len(Path(dirpath).parts) - root_depth >= 1:
            dirnames.clear()
    raise FileNotFoundError(f"{folder}: contains no images ({', '.join(IMAGE_SUFFIXES)}). " + hint)
