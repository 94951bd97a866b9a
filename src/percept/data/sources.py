"""Registry of the datasets that can be downloaded: where each file lives and its published checksum.

A checksum of ``None`` means the publisher gives none; :func:`percept.data.download.fetch_source` then
records the sha256 on first use (and prints it so that it can be pinned with ``checksums``).
"""

from __future__ import annotations

from dataclasses import dataclass

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    extract: bool = True  # unpack into the dataset folder (archives only); otherwise copy it there as is

    @property
    def is_archive(self) -> bool:
        return self.filename.lower().endswith(ARCHIVE_SUFFIXES)

    @property
    def has_published_checksum(self) -> bool:
        return bool(self.md5 or self.sha256)


@dataclass(frozen=True)
class Source:
    name: str
    files: tuple[RemoteFile, ...]
    description: str
    citation_url: str


def _bapps(name: str, filename: str, what: str) -> Source:
    return Source(
        name=name,
        files=(RemoteFile(f"https://perceptual-similarity.s3.us-west-2.amazonaws.com/dataset/{filename}", filename),),
        description=f"BAPPS (Berkeley-Adobe Perceptual Patch Similarity), {what}",
        citation_url="https://richzhang.github.io/PerceptualSimilarity/",
    )


def _cyclegan(name: str, what: str) -> Source:
    # The CycleGAN authors publish no checksums: the sha256 is recorded on first use (MANIFEST.json, logged) and
    # can be pinned with downloads.checksums["<name>.zip"] from then on.
    return Source(
        name=name,
        files=(RemoteFile(f"https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip", f"{name}.zip"),),
        description=f"CycleGAN unpaired translation set {name} ({what}), trainA/ trainB/ testA/ testB/",
        citation_url="https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix",
    )


_VOC = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/"

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="stl10",
            files=(RemoteFile("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary.tar.gz",
                              md5="91f7769df0f17e558f3565bffb0c7dfb"),),
            description="STL-10: 96x96 colour images of 10 classes (5000 train, 8000 test labelled images)",
            citation_url="https://cs.stanford.edu/~acoates/stl10/",
        ),
        Source(
            name="svhn",
            files=(
                RemoteFile("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat",
                           md5="e26dedcc434d2e4c54c9b2d4a06d8373", extract=False),
                RemoteFile("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "test_32x32.mat",
                           md5="eb5a983be6a315427106f1b164d9cef3", extract=False),
                # 531k more digits (1.3 GB): the perceptual-autoencoder papers train on them
                # (downloads.prepare.svhn.extra); the paper config is the only one that downloads SVHN.
                RemoteFile("http://ufldl.stanford.edu/housenumbers/extra_32x32.mat", "extra_32x32.mat",
                           md5="a93ce644f1a588dc4d68dda5feec44a7", extract=False),
            ),
            description="SVHN (Street View House Numbers), cropped 32x32 digits, train, test and extra",
            citation_url="http://ufldl.stanford.edu/housenumbers/",
        ),
        _bapps("bapps_2afc_train", "twoafc_train.tar.gz", "2AFC training triplets"),
        _bapps("bapps_2afc_val", "twoafc_val.tar.gz", "2AFC validation triplets"),
        _bapps("bapps_jnd", "jnd.tar.gz", "JND (just noticeable difference) validation pairs"),
        Source(
            name="voc2007",
            files=(
                RemoteFile(_VOC + "VOCtrainval_06-Nov-2007.tar", "VOCtrainval_06-Nov-2007.tar",
                           md5="c52e279531787c972589f7e41ab4ae64"),
                RemoteFile(_VOC + "VOCtest_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar",
                           md5="b6e924de25625d8de591ea690078ad9f"),
            ),
            description="PASCAL VOC 2007: 20-class multi-label images with boxes and some segmentations",
            citation_url="http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
        ),
        Source(
            name="breakhis",
            files=(RemoteFile("http://www.inf.ufpr.br/vri/databases/BreaKHis_v1.tar.gz", "BreaKHis_v1.tar.gz"),),
            description="BreakHis: breast-cancer histopathology images, benign/malignant, 4 magnifications",
            citation_url="https://web.inf.ufpr.br/vri/databases/breast-cancer-histopathological-database-breakhis/",
        ),
        _cyclegan("horse2zebra", "horses and zebras from ImageNet"),
        _cyclegan("apple2orange", "apples and oranges from ImageNet"),
    )
}


def get_source(name: str) -> Source:
    """The registered source ``name``, or a :class:`KeyError` that lists the known names."""
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown dataset source {name!r}; known sources: {', '.join(sorted(SOURCES))}") from None
