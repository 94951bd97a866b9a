"""percept — deep perceptual features: explanations, perceptual similarity and perceptual loss in one DAG.

    snakemake --cores 2                       # the embedded, offline default (config.yaml)
    snakemake --cores 2 fig_datasets          # rebuild one figure
    snakemake -n --configfile configs/paper.yaml   # plan the papers' full reproduction
"""

from snakemake.exceptions import WorkflowError

from percept.config import ConfigError, validate_config


configfile: "config.yaml"


try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc))


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/figures.smk"
include: "rules/similarity.smk"


rule all:
    default_target: True
    input:
        FIGURES,
        feature_targets(),
        [dataset_file(s) for s in config["downloads"]["sources"]],
