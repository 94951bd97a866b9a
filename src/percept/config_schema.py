"""The config schema as written (percept/schema/config.schema.yaml) and its local ``$ref`` resolution.

A leaf module (yaml only): :mod:`percept.config` fills the registries' names into the schema's enumerations
and validates; :class:`percept.backbones.spec.NetworkSpec` reads the network defaults here without importing the
config module (which imports the backbone registry back).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    return yaml.safe_load(resources.files("percept").joinpath("schema/config.schema.yaml").read_text())


def raw_schema() -> dict[str, Any]:
    """The schema as written (a fresh copy: the registries' names not yet filled into ``__BACKBONES__`` etc.)."""
    return copy.deepcopy(_raw())


def resolve(sch: Any, root: dict[str, Any]) -> dict[str, Any]:
    """``sch`` with a local ``$ref`` (``#/$defs/x``) followed and its sibling keywords laid over the target: a
    section that extends ``#/$defs/network`` keeps the network's properties and adds (or overrides, or switches
    off with ``false``) its own; ``required`` lists are joined. The schema itself without a ``$ref``."""
    if not isinstance(sch, dict):
        return {}
    ref = sch.get("$ref")
    if not (isinstance(ref, str) and ref.startswith("#/")):
        return sch
    target: Any = root
    for part in ref[2:].split("/"):
        target = target[part]
    out = dict(resolve(target, root))
    for key, value in sch.items():
        if key == "$ref":
            continue
        if key == "properties":
            props = dict(out.get("properties", {}))
            for name, sub in value.items():
                base = props.get(name)
                props[name] = ({**resolve(base, root), **sub} if isinstance(base, dict) and isinstance(sub, dict)
                               else sub)
            out["properties"] = props
        elif key == "required":
            out["required"] = list(dict.fromkeys([*out.get("required", []), *value]))
        else:
            out[key] = value
    return out
