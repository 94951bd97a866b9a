"""Split a monolithic src/percept/schema/config.schema.yaml into per-stage part files (issue 20), in place.

One-off tool, deterministic and text-based (comments and layout are kept): the root file keeps the general keys
(seed, device, allow_download, progress) and lists its ``parts``; each part file holds the ``properties`` of its
stage's sections and the ``$defs`` only that stage uses; ``defs.schema.yaml`` holds the shared ``$defs``
(backbone, network, weights, taps, resize, dataset, ...). :func:`percept.config_schema.raw_schema` composes
them. The YAML anchor ``&predictors`` (shared by the autoencoders and loss_networks sections) becomes
``$defs/predictors``. Rerun it on a monolithic file (e.g. after merging branches that edited one) with
``python bench/split_schema.py``; it refuses a file that is already split, and a section it does not know.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "src" / "percept" / "schema"
GENERAL = ("seed", "device", "allow_download", "progress")
PARTS = {
    "data": ("datasets", "downloads", "imagenet_val"),
    "features": ("features", "backbone_check"),
    "explain": ("explain",),
    "autoencoders": ("autoencoders",),
    "loss_networks": ("loss_networks",),
    "mpcs": ("mpcs",),
    "similarity": ("similarity",),
    "translation": ("translation",),
}
TOP = re.compile(r"^  ([A-Za-z_$][A-Za-z0-9_]*):")


def blocks(lines: list[str]) -> dict[str, list[str]]:
    """The two-space-indented keys of a region and their lines (a key's block runs to the next such key)."""
    out: dict[str, list[str]] = {}
    key = None
    for line in lines:
        m = TOP.match(line)
        if m:
            key = m.group(1)
            out[key] = []
        if key is None:
            if line.strip():
                raise SystemExit(f"unexpected line before the first key: {line!r}")
            continue
        out[key].append(line)
    return out


def strip_trailing_blank(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def cut_anchor(lines: list[str], name: str) -> tuple[list[str], list[str]]:
    """Replace the block ``key: &name`` in ``lines`` by a ``$ref`` to ``$defs/name``; return it as a def."""
    for i, line in enumerate(lines):
        m = re.match(rf"^(\s*)(\S+): &{name}\s*$", line)
        if m:
            indent = len(m.group(1))
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
                end += 1
            body = [ln[indent - 2:] if ln.strip() else ln for ln in lines[i + 1:end]]
            ref = f'{m.group(1)}{m.group(2)}: {{$ref: "#/$defs/{name}"}}'
            return lines[:i] + [ref] + lines[end:], [f"  {name}:"] + strip_trailing_blank(body)
    raise SystemExit(f"anchor &{name} not found")


def main() -> None:
    root_path = SCHEMA / "config.schema.yaml"
    lines = root_path.read_text().split("\n")
    if any(ln.startswith("parts:") for ln in lines):
        raise SystemExit(f"{root_path} is already split")
    i_props = lines.index("properties:")
    i_defs = lines.index("$defs:")
    header, props, defs = lines[:i_props], lines[i_props + 1:i_defs], lines[i_defs + 1:]
    sections = blocks(props)
    known = set(GENERAL) | {s for v in PARTS.values() for s in v}
    unknown = sorted(set(sections) - known)
    if unknown:
        raise SystemExit(f"sections {unknown} belong to no part: add them to PARTS")
    part_lines = {p: [ln for s in secs if s in sections for ln in sections[s]] for p, secs in PARTS.items()}
    # the YAML anchors used across parts become $defs
    extra_defs: dict[str, list[str]] = {}
    for part, body in part_lines.items():
        for name in re.findall(r"&([A-Za-z_]+)", "\n".join(body)):
            users = [p for p, b in part_lines.items() if p != part and f"*{name}" in "\n".join(b)]
            if users:
                body, extra_defs[name] = cut_anchor(body, name)
                part_lines[part] = body
                for p in users:
                    part_lines[p] = [ln.replace(f"*{name}", f'{{$ref: "#/$defs/{name}"}}') for ln in part_lines[p]]
                extra_defs[name] = (part, extra_defs[name])  # type: ignore[assignment]
    definitions = blocks(defs)
    def_home: dict[str, str] = {}
    for name in definitions:
        users = [p for p, b in part_lines.items() if f"#/$defs/{name}\"" in "\n".join(b)]
        def_home[name] = users[0] if len(users) == 1 and name not in ("backbone", "network", "weights", "taps",
                                                                      "resize", "dataset") else "defs"
    note = "# {}: a part of the config schema (config.schema.yaml lists its parts; percept.config_schema composes them)."
    for part, body in part_lines.items():
        out = [note.format(part), "properties:", *strip_trailing_blank(body)]
        own = [n for n, h in def_home.items() if h == part]
        anchors = [(n, d) for n, (p, d) in extra_defs.items() if p == part]  # type: ignore[misc]
        if own or anchors:
            out.append("")
            out.append("$defs:")
            for n in own:
                out += strip_trailing_blank(definitions[n])
            for _, d in anchors:
                out += d
        (SCHEMA / f"{part}.schema.yaml").write_text("\n".join(out) + "\n")
    shared = [note.format("Shared definitions"), "$defs:"]
    for n, h in def_home.items():
        if h == "defs":
            shared += strip_trailing_blank(definitions[n])
    (SCHEMA / "defs.schema.yaml").write_text("\n".join(shared) + "\n")
    general = [ln for s in GENERAL for ln in sections[s]]
    parts = ", ".join(["defs", *PARTS])
    root = [*header,
            "# The stages' sections live in the part files listed under `parts` (schema/<part>.schema.yaml), the",
            "# shared definitions ($defs: backbone, network, weights, taps, ...) in defs.schema.yaml;",
            "# percept.config_schema composes them into one schema.",
            f"parts: [{parts}]",
            "properties:", *strip_trailing_blank(general)]
    root_path.write_text("\n".join(root) + "\n")
    print(f"split {root_path} into {parts}", file=sys.stderr)


if __name__ == "__main__":
    main()
