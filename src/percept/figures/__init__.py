"""Figures, rendered from the files and tables the pipeline computed (never from hard-coded numbers)."""

from typing import Any, Mapping, Sequence

from percept.figures.registry import _RENDERERS, renderer  # noqa: F401 (the registry, read by tests)


def render(name: str, inputs: Mapping[str, Any], out: Sequence[str]) -> None:
    from percept.figures import autoencoders, explain, foundation, mpcs, similarity, translation  # noqa: F401,E501

    if name not in _RENDERERS:
        raise KeyError(f"no renderer for figure {name!r}; known: {sorted(_RENDERERS)}")
    _RENDERERS[name](inputs, out)
