"""percept — deep perceptual features: explanations, perceptual similarity and perceptual loss in one DAG.

    snakemake --cores 2                       # the embedded, offline default (config.yaml)
    snakemake --cores 2 fig_datasets          # rebuild one figure
    snakemake -n --configfile configs/paper.yaml   # plan the papers' full reproduction
"""

import os
import sys

from snakemake.exceptions import WorkflowError

# Jobs (local, conda or SLURM) import `percept` from this checkout, so every job runs the code that planned it,
# also in a conda env that holds only the dependencies (envs/*.yaml).
_SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, _SRC)
_ENV = os.environ  # set for the jobs, not read from the user: nothing to assert with envvars
_ENV["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, _ENV.get("PYTHONPATH", "")) if p)

from snakemake.utils import update_config  # noqa: E402

from percept.config import ConfigError, coerce_overrides, validate_config  # noqa: E402


configfile: "config.yaml"


# Snakemake hands nested --config values over as strings (--config 'explain={"rise": {"n_masks": 128}}' gives
# '128'): read them as the schema's types first, where the schema takes no string there.
update_config(config, coerce_overrides(workflow.config_settings.config))

try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc))


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/translation.smk"
include: "rules/explain.smk"
include: "rules/autoencoders.smk"
include: "rules/ssl.smk"
include: "rules/similarity.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        PLAN.targets(),  # the figures, the feature caches, the downloads
