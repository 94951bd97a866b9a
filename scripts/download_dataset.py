"""Download, verify and unpack one registered dataset source (percept.data.download.fetch_source)."""

from percept.data.download import fetch_source
from percept.workflow import setup_script

log = setup_script(snakemake, uses_torch=False)  # noqa: F821 (injected by Snakemake)
p = snakemake.params  # noqa: F821
try:
    fetch_source(p.source, snakemake.output[0], mirror=p.mirror, checksums=dict(p.checksums),  # noqa: F821
                 progress=p.progress)
except Exception:
    log.exception("downloading %s failed", p.source)
    raise
