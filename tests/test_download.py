"""Downloading, verifying and unpacking datasets, against a loopback HTTP server (never the real hosts)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from percept.data import download
from percept.data.download import (ChecksumError, CorruptArchiveError, DownloadError, UnsafeArchiveError,
                                   download_file, fetch_source, local_folder, safe_extract)
from conftest import make_tar
from percept.data.sources import SOURCES, Source, get_source


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


STL_TAR = make_tar({"stl10_binary/class_names.txt": b"a\nb\n", "stl10_binary/train_y.bin": bytes([1, 2])})


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# ------------------------------------------------------------------------------------------------ registry

def test_registry_has_the_official_sources():
    assert {"stl10", "svhn", "bapps_2afc_train", "bapps_2afc_val", "bapps_jnd", "voc2007", "breakhis"} <= set(SOURCES)
    assert get_source("stl10").files[0].md5 == "91f7769df0f17e558f3565bffb0c7dfb"
    svhn = get_source("svhn")
    assert [f.filename for f in svhn.files] == ["train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"]
    assert svhn.files[2].md5 == "a93ce644f1a588dc4d68dda5feec44a7"
    assert not any(f.extract and f.is_archive for f in svhn.files)
    assert get_source("bapps_jnd").files[0].url == "https://perceptual-similarity.s3.us-west-2.amazonaws.com/dataset/jnd.tar.gz"
    assert not get_source("breakhis").files[0].has_published_checksum
    assert all(isinstance(s, Source) and s.citation_url for s in SOURCES.values())
    h2z = get_source("horse2zebra").files[0]
    assert h2z.url == "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip" and h2z.is_archive
    assert not h2z.has_published_checksum  # no published checksum: recorded on first use, pinnable in config


def test_unknown_source_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError) as err:
        fetch_source("cifar10", tmp_path / "x", progress=False)
    assert "stl10" in str(err.value) and "voc2007" in str(err.value)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------- fetch_source

def test_fetch_source_verifies_extracts_and_writes_manifest(server, tmp_path, monkeypatch):
    (server.root / "stl10_binary.tar.gz").write_bytes(STL_TAR)
    out = tmp_path / "raw" / "stl10"
    got = fetch_source("stl10", out, mirror=server.url + "/", checksums={"stl10_binary.tar.gz": sha256(STL_TAR)},
                       progress=False)
    assert got == out
    assert (out / "stl10_binary" / "class_names.txt").read_bytes() == b"a\nb\n"
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["source"] == "stl10"
    (entry,) = manifest["files"]
    assert entry["url"] == f"{server.url}/stl10_binary.tar.gz"
    assert entry["sha256"] == sha256(STL_TAR) and entry["md5"] == hashlib.md5(STL_TAR).hexdigest()
    assert entry["verification"] == "user" and entry["verified"] is True
    assert (tmp_path / "raw" / "archives" / "stl10_binary.tar.gz").read_bytes() == STL_TAR
    assert not (tmp_path / "raw" / ".stl10.partial").exists()
    # A rerun reuses the verified archive: it works with the server unreachable, and replaces out_dir.
    (out / "stale").write_text("old")
    fetch_source("stl10", out, mirror=closed_port_url(), checksums={"stl10_binary.tar.gz": sha256(STL_TAR)},
                 progress=False)
    assert not (out / "stale").exists() and (out / "stl10_binary" / "train_y.bin").exists()


def test_first_use_checksum_is_recorded_and_announced(server, tmp_path, caplog, capsys):
    data = make_tar({"BreaKHis_v1/README.txt": b"hello"})
    (server.root / "BreaKHis_v1.tar.gz").write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="percept.data.download"):
        out = fetch_source("breakhis", tmp_path / "raw" / "breakhis", mirror=server.url, progress=False)
    assert sha256(data) in caplog.text and "first use" in caplog.text
    assert sha256(data) in capsys.readouterr().err
    (entry,) = json.loads((out / "MANIFEST.json").read_text())["files"]
    assert entry["verification"] == "first-use" and entry["verified"] is False and entry["sha256"] == sha256(data)


def test_non_archives_are_copied_as_is(server, tmp_path):
    files = {"train_32x32.mat": b"train-bytes", "test_32x32.mat": b"test-bytes", "extra_32x32.mat": b"extra-bytes"}
    for name, data in files.items():
        (server.root / name).write_bytes(data)
    out = fetch_source("svhn", tmp_path / "svhn", mirror=server.url,
                       checksums={n: sha256(d) for n, d in files.items()}, progress=False)
    assert (out / "train_32x32.mat").read_bytes() == b"train-bytes"
    assert (out / "test_32x32.mat").read_bytes() == b"test-bytes"


def test_checksum_mismatch_leaves_everything_untouched(server, tmp_path):
    served = make_tar({"stl10_binary/train_y.bin": b"corrupted"})
    (server.root / "stl10_binary.tar.gz").write_bytes(served)
    raw = tmp_path / "raw"
    expected = sha256(STL_TAR)
    with pytest.raises(ChecksumError) as err:
        fetch_source("stl10", raw / "stl10", mirror=server.url, checksums={"stl10_binary.tar.gz": expected},
                     progress=False)
    msg = str(err.value)
    assert "stl10_binary.tar.gz" in msg and expected in msg and sha256(served) in msg
    assert f"{server.url}/stl10_binary.tar.gz" in msg and "checksums" in msg
    assert not (raw / "stl10").exists() and not (raw / ".stl10.partial").exists()
    assert all_files(raw / "archives") == []  # no temporary file left behind

    # With a good dataset and a (different) archive already in place, a failed download changes nothing.
    (raw / "stl10").mkdir()
    (raw / "stl10" / "good.txt").write_text("good")
    old = make_tar({"stl10_binary/train_y.bin": b"older release"})
    (raw / "archives" / "stl10_binary.tar.gz").write_bytes(old)
    with pytest.raises(ChecksumError) as err:
        fetch_source("stl10", raw / "stl10", mirror=server.url, checksums={"stl10_binary.tar.gz": expected},
                     progress=False)
    assert "left untouched" in str(err.value)
    assert (raw / "archives" / "stl10_binary.tar.gz").read_bytes() == old
    assert all_files(raw / "archives") == ["stl10_binary.tar.gz"]
    assert all_files(raw / "stl10") == ["good.txt"]


def test_md5_published_checksums_are_checked(server, tmp_path, monkeypatch):
    data = b"not the real archive"
    (server.root / "stl10_binary.tar.gz").write_bytes(data)
    with pytest.raises(ChecksumError, match="91f7769df0f17e558f3565bffb0c7dfb"):
        fetch_source("stl10", tmp_path / "stl10", mirror=server.url, progress=False)
    assert not (tmp_path / "stl10").exists()


def test_bad_checksum_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="not files of"):
        fetch_source("stl10", tmp_path / "stl10", checksums={"stl10.tgz": "0" * 64}, progress=False)
    with pytest.raises(ValueError, match="sha256"):
        fetch_source("stl10", tmp_path / "stl10", mirror=closed_port_url(),
                     checksums={"stl10_binary.tar.gz": "xyz"}, progress=False)


def test_rerun_after_failed_extraction_does_not_download_again(server, tmp_path, monkeypatch):
    (server.root / "stl10_binary.tar.gz").write_bytes(STL_TAR)
    checksums = {"stl10_binary.tar.gz": sha256(STL_TAR)}
    real = download.safe_extract

    def failing(archive, out_dir):
        raise OSError("disk full")

    monkeypatch.setattr(download, "safe_extract", failing)
    with pytest.raises(OSError, match="disk full"):
        fetch_source("stl10", tmp_path / "stl10", mirror=server.url, checksums=checksums, progress=False)
    assert not (tmp_path / "stl10").exists() and not (tmp_path / ".stl10.partial").exists()
    monkeypatch.setattr(download, "safe_extract", real)
    fetch_source("stl10", tmp_path / "stl10", mirror=closed_port_url(), checksums=checksums, progress=False)
    assert (tmp_path / "stl10" / "stl10_binary" / "train_y.bin").read_bytes() == bytes([1, 2])


def test_unsafe_archive_in_a_source_creates_nothing(server, tmp_path):
    evil = make_tar({"stl10_binary/ok.txt": b"ok", "../evil.txt": b"boom"})
    (server.root / "stl10_binary.tar.gz").write_bytes(evil)
    with pytest.raises(UnsafeArchiveError, match=r"\.\./evil\.txt"):
        fetch_source("stl10", tmp_path / "raw" / "stl10", mirror=server.url,
                     checksums={"stl10_binary.tar.gz": sha256(evil)}, progress=False)
    assert not (tmp_path / "raw" / "stl10").exists() and not (tmp_path / "raw" / ".stl10.partial").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "raw" / "evil.txt").exists()


# --------------------------------------------------------------------------------------------- download_file

def test_download_file_and_skip_when_present(server, tmp_path):
    (server.root / "a.bin").write_bytes(b"payload" * 1000)
    dest = tmp_path / "d" / "a.bin"
    res = download_file(f"{server.url}/a.bin", dest, sha256=sha256(b"payload" * 1000), progress=False)
    assert res.downloaded and res.verified and dest.read_bytes() == b"payload" * 1000
    # Already there with the right checksum (e.g. copied by hand): no network needed.
    res = download_file(f"{closed_port_url()}/a.bin", dest, md5=hashlib.md5(b"payload" * 1000).hexdigest(),
                        progress=False)
    assert not res.downloaded and res.verified


def test_failed_download_never_overwrites_dest(server, tmp_path):
    (server.root / "a.bin").write_bytes(b"new but corrupted")
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"previous")
    with pytest.raises(ChecksumError, match="a.bin"):
        download_file(f"{server.url}/a.bin", dest, sha256=sha256(b"the real one"), progress=False)
    assert dest.read_bytes() == b"previous"
    assert all_files(tmp_path) == ["a.bin", "www", "www/a.bin"]


def test_server_down_raises_download_error_naming_the_url(tmp_path):
    url = f"{closed_port_url()}/stl10_binary.tar.gz"
    with pytest.raises(DownloadError) as err:
        download_file(url, tmp_path / "x.tar.gz", progress=False, timeout=5)
    assert url in str(err.value) and "mirror" in str(err.value)
    assert all_files(tmp_path) == []
    with pytest.raises(DownloadError, match="127.0.0.1"):
        fetch_source("stl10", tmp_path / "stl10", mirror=closed_port_url(), progress=False)
    assert not (tmp_path / "stl10").exists()


def test_http_error_and_short_transfer_raise_download_error(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download_file(f"{server.url}/missing.bin", tmp_path / "m.bin", progress=False)
    with pytest.raises(DownloadError, match="short|cut|Incomplete"):
        download_file(f"{server.url}/short.bin", tmp_path / "s.bin", progress=False, timeout=5)
    assert not (tmp_path / "m.bin").exists() and not (tmp_path / "s.bin").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "www"] == []


# ---------------------------------------------------------------------------------------------- safe_extract

def test_safe_extract_tar_and_zip(tmp_path):
    tgz = tmp_path / "a.tgz"
    tgz.write_bytes(make_tar({"d/x.txt": b"x", "d/y.txt": b"y"}, links={"d/link": (tarfile.SYMTYPE, "x.txt")}))
    assert sorted(safe_extract(tgz, tmp_path / "t")) == ["d/link", "d/x.txt", "d/y.txt"]
    assert (tmp_path / "t" / "d" / "link").read_bytes() == b"x"
    plain = tmp_path / "a.tar"
    plain.write_bytes(make_tar({"p.txt": b"plain"}, mode="w"))
    safe_extract(plain, tmp_path / "p")
    assert (tmp_path / "p" / "p.txt").read_bytes() == b"plain"
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("z/z.txt", b"zip")
    safe_extract(zpath, tmp_path / "z")
    assert (tmp_path / "z" / "z" / "z.txt").read_bytes() == b"zip"


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "symlink_abs", "hardlink", "through_link"])
def test_unsafe_members_are_refused_and_nothing_is_extracted(tmp_path, case):
    outside = tmp_path / "outside"
    members = {"safe/first.txt": b"safe"}
    links = {}
    bad = {"dotdot": "../outside/evil.txt", "absolute": str(outside / "abs_evil.txt")}
    if case in bad:
        members[bad[case]] = b"evil"
    elif case == "symlink":
        links["safe/escape"] = (tarfile.SYMTYPE, "../../outside")
    elif case == "symlink_abs":
        links["safe/escape"] = (tarfile.SYMTYPE, str(outside))
    elif case == "hardlink":
        links["safe/hard"] = (tarfile.LNKTYPE, "../outside/secret")
    else:  # a link that stays inside, then a member written through it with '..'
        links["safe/up"] = (tarfile.SYMTYPE, ".")
        members["safe/up/x.txt"] = b"through"
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(make_tar(members, links=links))
    if case == "absolute":
        with tarfile.open(archive) as tar:
            assert tar.getnames()[-1].startswith("/")
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(archive, out)
    assert str(archive) in str(err.value) and "member" in str(err.value)
    assert not out.exists()
    assert not outside.exists()


def test_unsafe_zip_is_refused(tmp_path):
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        zf.writestr("../evil.txt", b"evil")
    with pytest.raises(UnsafeArchiveError, match="evil.txt"):
        safe_extract(zpath, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("mode", ["w:gz", "w"])
def test_truncated_archives_are_corrupt(tmp_path, mode):
    data = make_tar({f"f{i}.bin": bytes(range(256)) * 40 for i in range(5)}, mode=mode)
    archive = tmp_path / ("t.tar.gz" if mode == "w:gz" else "t.tar")
    # Cut inside a member, and (plain tar) exactly at a member boundary, which tarfile alone reads as a shorter
    # archive without complaint.
    last_header = tarfile.open(fileobj=io.BytesIO(data)).getmembers()[-1].offset
    for cut in (len(data) // 2, len(data) // 4 if mode == "w:gz" else last_header):
        archive.write_bytes(data[:cut])
        with pytest.raises(CorruptArchiveError) as err:
            safe_extract(archive, tmp_path / "out")
        assert str(archive) in str(err.value)
    archive.write_bytes(b"this is not an archive at all" * 100)
    with pytest.raises(CorruptArchiveError, match="t.tar"):
        safe_extract(archive, tmp_path / "out2")
    zpath = tmp_path / "t.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", b"a" * 5000)
    zpath.write_bytes(buf.getvalue()[:-30])
    with pytest.raises(CorruptArchiveError, match="t.zip"):
        safe_extract(zpath, tmp_path / "out3")


# ---------------------------------------------------------------------------------------------- local_folder

def test_local_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagenet_val"):
        local_folder(None)
    with pytest.raises(FileNotFoundError, match="imagenet_val"):
        local_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(FileNotFoundError, match="no images"):
        local_folder(tmp_path / "empty")
    (tmp_path / "val" / "n01440764").mkdir(parents=True)
    (tmp_path / "val" / "n01440764" / "ILSVRC2012_val_00000293.JPEG").write_bytes(b"\xff\xd8")
    assert local_folder(tmp_path / "val") == tmp_path / "val"


# ------------------------------------------------------------------------------------ Massachusetts Roads

def _mass_roads_builder():
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "tests" / "paper_mini"))
    import make_archives

    return make_archives.build_massachusetts_roads


def test_massachusetts_roads_is_registered_by_the_publishers_index_pages():
    src = get_source("massachusetts_roads")
    assert [f.url for f in src.files] == [
        f"https://www.cs.toronto.edu/~vmnih/data/mass_roads/{split}/{kind}/index.html"
        for split in ("train", "valid", "test") for kind in ("sat", "map")]
    assert [f.expected_files for f in src.files] == [1108, 1108, 14, 14, 49, 49]  # Mnih (2013): 1171 tiles
    assert all(f.listing and not f.extract and not f.has_published_checksum for f in src.files)


def test_massachusetts_roads_follows_its_index_pages(server, tmp_path, caplog):
    _mass_roads_builder()(server.root, {"train": 2, "valid": 1, "test": 1}, side=40)
    page = server.root / "mass_roads" / "train" / "sat" / "index.html"
    # Links the downloader must not follow: another folder, the parent, a sub-folder, another suffix, an
    # encoded path out of the folder.
    page.write_text(page.read_text() + '<a href="../map/10078660_15.tif">x</a> <a href="/">up</a>\n'
                    '<a href="sub/y.tiff">y</a> <a href="notes.txt">n</a> <a href="..%2F..%2Fz.tiff">z</a>\n')
    (server.root / "mass_roads" / "train" / "sat" / "notes.txt").write_text("not data")
    with caplog.at_level(logging.WARNING):
        out = fetch_source("massachusetts_roads", tmp_path / "raw" / "massachusetts_roads", mirror=server.url,
                           progress=False)
    tiles = [p for p in all_files(out) if p.endswith((".tif", ".tiff"))]
    assert len(tiles) == 8 and not any("z.tiff" in p or "y.tiff" in p for p in tiles)
    for split, n in (("train", 2), ("valid", 1), ("test", 1)):
        assert len([p for p in tiles if p.startswith(f"mass_roads/{split}/sat/") and p.endswith(".tiff")]) == n
        assert len([p for p in tiles if p.startswith(f"mass_roads/{split}/map/") and p.endswith(".tif")]) == n
    name = tiles[0]
    assert (out / name).read_bytes() == (server.root / name).read_bytes()
    manifest = json.loads((out / "MANIFEST.json").read_text())
    listed = [r for r in manifest["files"] if "listed_in" in r]
    assert len(listed) == 8 and all(r["verification"] == "first-use" and len(r["sha256"]) == 64 for r in listed)
    rec = next(r for r in listed if r["filename"] == name)
    assert rec["url"] == f"{server.url}/{name}"  # fetched from beside the page, not from the link's host
    assert rec["official_url"] == f"https://www.cs.toronto.edu/~vmnih/data/{name}"
    assert "lists 2 files, the publisher's description says 1108" in caplog.text


def test_massachusetts_roads_index_page_without_links_creates_nothing(server, tmp_path):
    _mass_roads_builder()(server.root, {"train": 1, "valid": 1, "test": 1}, side=40)
    (server.root / "mass_roads" / "valid" / "map" / "index.html").write_text("<html>moved</html>\n")
    with pytest.raises(DownloadError, match="links to no"):
        fetch_source("massachusetts_roads", tmp_path / "raw" / "massachusetts_roads", mirror=server.url,
                     progress=False)
    assert not (tmp_path / "raw" / "massachusetts_roads").exists()
