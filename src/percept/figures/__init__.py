"""Figures, rendered from the files and tables the pipeline computed (never from hard-coded numbers)."""

from typing import Any, Callable, Mapping, Sequence

_RENDERERS: dict[str, Callable[[Mapping[str, Any], Sequence[str]], None]] = {}


def renderer(name: str):
    """Register ``fn(inputs, out_paths)`` as the renderer of figure ``name`` (used by scripts/render_figure.py)."""

    def wrap(fn):
        _RENDERERS[name] = fn
        return fn

    return wrap


def render(name: str, inputs: Mapping[str, Any], out: Sequence[str]) -> None:
    from percept.figures import autoencoders, explain, foundation, mpcs, similarity, translation  # noqa: F401,E501

    if name not in _RENDERERS:
        raise KeyError(f"no renderer for figure {name!r}; known: {sorted(_RENDERERS)}")
    _RENDERERS[name](inputs, out)
