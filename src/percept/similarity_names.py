"""Names the config checks need without importing torch (percept.similarity imports it)."""

# Registry backbone -> the name of its linear weights in the lpips package (weights/v0.1/<name>.pth).
LPIPS_NETS = {"alexnet": "alex", "vgg16": "vgg", "squeezenet1_1": "squeeze"}


def two_afc_set(config, key: str) -> tuple[str, str]:
    """(name, path) of the 2AFC / JND set ``similarity.two_afc.<key>`` (train, val or jnd): the synthetic set
    the similarity stage builds from its reference images (data/similarity/), or a downloaded BAPPS set
    (data/datasets/)."""
    value = config["similarity"]["two_afc"][key]
    if value == "synthetic":
        name = "synthetic_jnd" if key == "jnd" else f"synthetic_2afc_{key}"
        return name, f"data/similarity/{name}.h5"
    return value, f"data/datasets/{value}.h5"
