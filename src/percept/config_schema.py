"""The config schema as written (percept/schema/config.schema.yaml and its parts) and ``$ref`` resolution.

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


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files("percept").joinpath(f"schema/{name}").read_text()) or {}


@lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    """config.schema.yaml with the part files it lists (``parts``: schema/<part>.schema.yaml, each with the
    ``properties`` of its stage's sections and its ``$defs``) composed into one schema, in the listed order."""
    root = _load("config.schema.yaml")
    root.setdefault("properties", {})
    root.setdefault("$defs", {})
    for part in root.pop("parts", []):
        sub = _load(f"{part}.schema.yaml")
        for key in ("properties", "$defs"):
            twice = sorted(set(root[key]) & set(sub.get(key, {})))
            if twice:
                raise ValueError(f"schema/{part}.schema.yaml: {key} {twice} are defined in another part too")
            root[key].update(sub.get(key, {}))
        unknown = sorted(set(sub) - {"properties", "$defs"})
        if unknown:
            raise ValueError(f"schema/{part}.schema.yaml: only properties and $defs belong in a part; found {unknown}")
    return root


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
