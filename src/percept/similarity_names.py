"""Names the config checks need without importing torch (percept.similarity imports it); the 2AFC sets' paths
are percept.plan.two_afc_set's."""

# Registry backbone -> the name of its linear weights in the lpips package (weights/v0.1/<name>.pth).
LPIPS_NETS = {"alexnet": "alex", "vgg16": "vgg", "squeezenet1_1": "squeeze"}

