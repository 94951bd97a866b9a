"""Registry of the datasets that can be downloaded: where each file lives and its published checksum.

A checksum of ``None`` means the publisher gives none; :func:`percept.data.download.fetch_source` then
records the sha256 on first use (and prints it so that it can be pinned with ``checksums``).

A publisher that serves a folder of files behind an index page rather than an archive (the Massachusetts
Roads of Mnih's thesis) is registered by its index pages (``RemoteFile.listing``): every file the page links to
in its own folder, with one of the listed suffixes, is downloaded too (see
:func:`percept.data.download.fetch_source`).
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
    # An index page: the files it links to in its own folder with one of these suffixes are the data. Its
    # ``filename`` is a relative path (the publisher's folder layout), kept in the dataset folder.
    listing: tuple[str, ...] = ()
    expected_files: int | None = None  # how many files the publisher's description says the page lists

    @property
    def folder(self) -> str:
        """The relative folder of an index page's files (``mass_roads/train/sat``); '' for a plain file."""
        return self.filename.rpartition("/")[0]

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
_MNIH = "https://www.cs.toronto.edu/~vmnih/data/"
# Mnih (2013), "Machine Learning for Aerial Image Labeling", ch. 6: 1171 tiles of 1500 x 1500 px, split at random
# into 1108 train, 14 valid and 49 test; aerial images as sat/*.tiff, road maps as map/*.tif.
MASS_ROADS_COUNTS = {"train": 1108, "valid": 14, "test": 49}


def _mass_roads() -> Source:
    # No archive, no checksums: the publisher serves each folder as an index page of links (the grid paper's
    # code, src/dataset_collector.py mrd_collector, reads the same six pages). The pages can be pinned with
    # downloads.checksums; the tiles' sha256 are recorded on first use in MANIFEST.json.
    files = tuple(
        RemoteFile(f"{_MNIH}mass_roads/{split}/{kind}/index.html", f"mass_roads/{split}/{kind}/index.html",
                   extract=False, listing=(".tif", ".tiff"), expected_files=n)
        for split, n in MASS_ROADS_COUNTS.items() for kind in ("sat", "map"))
    return Source(
        name="massachusetts_roads",
        files=files,
        description="Massachusetts Roads (Mnih 2013): 1500x1500 aerial tiles (sat/*.tiff) and road maps (map/*.tif), "
                    "train 1108, valid 14, test 49",
        citation_url="https://www.cs.toronto.edu/~vmnih/data/",
    )


# Set5 / Set14 as the grid paper's code fetches them (src/dataset_collector.py set_collector: the HR images of
# jbhuang0604/SelfExSR data/<set>/image_SRF_2/img_0NN_SRF_2_HR.png); the sha256 were computed from that
# repository's git objects at commit 8f6dd8c1d20cb7e8792a7177b4f6fd677633f598 (git checks them by their blob ids),
# so they are pinned here like published checksums.
_SELFEXSR = "https://raw.githubusercontent.com/jbhuang0604/SelfExSR/master/data/"
_SELFEXSR_SHA256 = {
    "Set5": ("b7f0633258c4dc1a1ef57f26ef2e2db414b64c170cb7c618730cb2f2aae3c7ed",
             "6f9d47ea7f70bc8a98f33d483fc7ffe684e79c9c8398321006ab8093fce5e4ef",
             "a58f6334af41127d8de5ea64e36ad174623a689c1bd5c4100aee20738b93a944",
             "30bd282537e4660651d5f668252353a66723c301ccba541a699af053269e9eb3",
             "653e3aa5cbc70487e38e31260ba2d42588d575e267e23951ea66157adc3285e6"),
    "Set14": ("d60c263b88e82f70dccb0112c8e1e5f66ca8be6581d88ceabb353fe4c88feada",
              "282a29a2d82defbda925c01875b765c4c5c33f85f2f5655400a771eb7241d247",
              "ecf4c67660202decfbabf5898ef56a2cd1a88393d48dfc9208d4467ac9a76713",
              "04ae5ef38fc38ec1db20df2842c07226d7684da312fd3bd4cd0bd0401d9f62b0",
              "ca96cdc294c81b1810dab4ba73c3675049cfd127d090a4719ff21f6a9d96b4bd",
              "bd3710be9a2d9efdfa254ac2282dd7eaec0079d7bcd43fcb256517afebbfee58",
              "d72e12d6eb8144ad2420fe91af19bcb51256ac17b8221fa1c8f89f2a3d6b50c0",
              "c49e96409094b390704ec1eeab85a0f1c7660249ca8826ffe468c046758e3ab9",
              "469af940770cb99f92abc82a597388fe07b5eaf7a557c9e20c0094efc2870e01",
              "e62db478accc42370e463ac95f93e691debe751196f5927494cce1bae22df754",
              "44509e5c39eb0a0af5b0cf887ee53194a1f6830d125cff763275e13544ed4614",
              "f727b04ddea2c2ae07784ee9e9dd9db5c6035121d93de933eac3a9a8ad33a0a7",
              "2743edf18619b152bcff0da9383110b4257531a096369a8dcf7e879e43c1e03e",
              "6795235d3a79bbb80f951b199752d2e64882f649c86efe3d94695020f425c11d"),
}
BSDS300_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/bsds/BSDS300-images.tgz"


def _sr_benchmarks() -> Source:
    sets = tuple(RemoteFile(f"{_SELFEXSR}{name}/image_SRF_2/img_{i:03d}_SRF_2_HR.png",
                            f"{name}/img_{i:03d}_SRF_2_HR.png", sha256=sha, extract=False)
                 for name, shas in _SELFEXSR_SHA256.items() for i, sha in enumerate(shas, 1))
    return Source(
        name="sr_benchmarks",
        # BSD100 = the 100 test images of BSDS300 (the grid paper's bsd300_collector; Berkeley publishes no
        # checksum: recorded on first use)
        files=sets + (RemoteFile(BSDS300_URL, "BSDS300-images.tgz"),),
        description="Super-resolution benchmarks: Set5, Set14 (HR images of SelfExSR) and BSD100 (BSDS300 test)",
        citation_url="https://github.com/jbhuang0604/SelfExSR",
    )


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
        _mass_roads(),
        _sr_benchmarks(),
    )
}


def get_source(name: str) -> Source:
    """The registered source ``name``, or a :class:`KeyError` that lists the known names."""
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown dataset source {name!r}; known sources: {', '.join(sorted(SOURCES))}") from None
