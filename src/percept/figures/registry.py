"""The figure renderers by name: each renderer module registers its figures here when imported, and
:func:`percept.figures.render` imports them all (so the package's __init__ and its modules import no cycle)."""

from typing import Any, Callable, Mapping, Sequence

_RENDERERS: dict[str, Callable[[Mapping[str, Any], Sequence[str]], None]] = {}


def renderer(name: str):
    """Register ``fn(inputs, out_paths)`` as the renderer of figure ``name`` (used by scripts/render_figure.py)."""

    def wrap(fn):
        _RENDERERS[name] = fn
        return fn

    return wrap
