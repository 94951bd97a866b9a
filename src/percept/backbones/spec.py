"""One network entry of the config, typed: :class:`NetworkSpec`.

Every stage names a network the same way — a registry backbone, its weights (ImageNet or a seeded random
initialisation), the input side it is resized to, and the taps it is read at — through the schema's shared
definition ``$defs/network`` (percept/schema/defs.schema.yaml), which each section extends with its own keys.
:meth:`NetworkSpec.from_config` builds the spec once from such an entry; the defaults come from that schema
definition, so no stage restates them. Torch-free: planning builds specs too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

TAP_NAMES = ("paper", "lpips", "all")


@lru_cache(maxsize=1)
def _network_defaults() -> dict[str, Any]:
    """The defaults of ``$defs/network``'s keys (weights, resize), read off the schema."""
    from percept.config_schema import raw_schema, resolve

    root = raw_schema()
    props = {k: resolve(v, root) for k, v in resolve(root["$defs"]["network"], root)["properties"].items()}
    return {k: v["default"] for k, v in props.items() if "default" in v}


@dataclass(frozen=True)
class NetworkSpec:
    """A registry network as a config entry names it.

    ``taps``: ``paper``, ``lpips``, ``all``, a tuple of module paths, or None where the section leaves the choice
    to the stage (the similarity stage's flaws / adaptation entries); ``tap``: the one module path of sections
    that read a single tap (the autoencoders' loss network, the explanation classifiers, a loss-network cell).
    """

    backbone: str
    weights: str
    resize: int | None = None
    taps: str | tuple[str, ...] | None = None
    tap: str | None = None

    @classmethod
    def from_config(cls, entry: Mapping[str, Any], where: str = "network") -> "NetworkSpec":
        """The spec of a config entry (validated or raw: keys the schema fills in take its defaults); keys of
        the section that are not network keys (name, mode, ...) are ignored. ``where`` is the entry's config
        path, named in the errors (``ValueError``)."""
        from percept import backbones
        from percept.backbones import WEIGHT_CHOICES

        if isinstance(entry, NetworkSpec):
            return entry
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: a network entry must be a mapping with a backbone, got {entry!r}")
        values = {**copy.deepcopy(_network_defaults()), **entry}
        name = values.get("backbone")
        if name is None:
            raise ValueError(f"{where}.backbone: missing; allowed values: {', '.join(backbones.NAMES)}")
        if name not in backbones.NAMES:
            raise ValueError(f"{where}.backbone: {name!r} is not allowed; allowed values: {', '.join(backbones.NAMES)}")
        if values["weights"] not in WEIGHT_CHOICES:
            raise ValueError(f"{where}.weights: {values['weights']!r} is not allowed; allowed values: "
                             f"{', '.join(WEIGHT_CHOICES)}")
        resize = values["resize"]
        if resize is not None and (isinstance(resize, bool) or not isinstance(resize, int) or resize < 16):
            raise ValueError(f"{where}.resize: {resize!r} must be null or an integer of at least 16")
        taps = values.get("taps")
        if isinstance(taps, (list, tuple)):
            if not taps or not all(isinstance(t, str) for t in taps):
                raise ValueError(f"{where}.taps: {taps!r} must be a non-empty list of module paths")
            taps = tuple(taps)
        elif taps is not None and taps not in TAP_NAMES:
            raise ValueError(f"{where}.taps: {taps!r} is not valid; {', '.join(TAP_NAMES)} or a list of module paths")
        tap = values.get("tap")
        if tap is not None and not isinstance(tap, str):
            raise ValueError(f"{where}.tap: {tap!r} must be a module path (a string)")
        return cls(backbone=name, weights=values["weights"], resize=resize, taps=taps, tap=tap)

    @property
    def random(self) -> bool:
        """Seeded random initialisation (the untrained baseline) rather than the pretrained weights."""
        return self.weights == "random"

    @property
    def stem(self) -> str:
        """The default file stem of the network's outputs: the backbone, ``-random`` appended for random weights."""
        return self.backbone + ("-random" if self.random else "")

    @property
    def taps_arg(self) -> str | list[str] | None:
        """``taps`` as :func:`percept.backbones.resolve_taps` and the stages take it (a list, not a tuple)."""
        return list(self.taps) if isinstance(self.taps, tuple) else self.taps

    def default_taps(self) -> str | list[str]:
        """``taps``, where None (the similarity stage's flaws / adaptation entries) the LPIPS taps where the
        backbone has them (as both papers' code: the flaws paper's analysis.py, AlexNet layers [1,4,7,9,11],
        VGG16 [3,8,15,22,29]; the adaptation paper's augmentations.py [1,4,7,9,11]), else its ``paper`` taps."""
        if self.taps is None:
            return "lpips" if self.registry().lpips_taps else "paper"
        return self.taps_arg

    def registry(self):
        """The :class:`percept.backbones.Backbone` of the registry."""
        from percept import backbones

        return backbones.get(self.backbone)
