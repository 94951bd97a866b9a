"""Convert the user's local ILSVRC2012 validation folder to the HDF5 dataset format."""

from pathlib import Path

from percept.data.prepare import prepare
from percept.workflow import setup_script

log = setup_script(snakemake)  # noqa: F821 (injected by Snakemake)
prepare("imagenet_folder", Path(snakemake.params.folder), Path(snakemake.output[0]),  # noqa: F821
        **snakemake.params.options)  # noqa: F821
log.info("wrote %s", snakemake.output[0])  # noqa: F821
