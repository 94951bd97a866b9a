"""What the semantic config checks of every section share (percept.config and the stages' ``checks``
modules): they import this, never percept.config, so the config can call every stage's checks without an
import cycle."""

from __future__ import annotations

from typing import Any, Iterable, Mapping


def tap_errors(where: str, spec, taps) -> Iterable[str]:
    """The config error for ``taps`` of backbone ``spec`` that the registry cannot resolve (key ``where``)."""
    from percept import backbones

    try:
        backbones.resolve_taps(spec, taps)
    except ValueError as exc:
        yield f"{where}: {exc}"


def download_errors(config: Mapping[str, Any], where: str, dataset: str) -> Iterable[str]:
    """The error for a downloadable ``dataset`` that ``downloads.sources`` does not fetch."""
    from percept.data.sources import SOURCES

    if dataset in SOURCES and dataset not in config["downloads"]["sources"]:
        yield (f"{where}: {dataset!r} must be downloaded first; add it to downloads.sources "
               f"(currently {config['downloads']['sources']})")
