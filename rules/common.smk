"""The plan of this config (percept.plan: every path, name and job list) bound once for the rules, and the
wildcards every stage shares. The rules call PLAN; they work out no path or name themselves."""

from percept.plan import (
    BACKBONE_CHECK,
    DOWNLOAD_SOURCES,
    Plan,
    autoencoder_file,
    autoencoder_summary,
    cell_path,
    dataset_file,
    distortion_cache,
    embeddings_file,
    explain_file,
    feature_file,
    feature_stats_file,
    figure_files,
    loss_network_file,
    mpcs_checkpoint,
    mpcs_file,
    mpcs_model,
    pretrained_input,
    raw_dir,
    similarity_data,
    similarity_file,
    translation_file,
)

PLAN = Plan(config)
JOB_THREADS = config["job_threads"]  # the threads of every rule that runs a network on the CPU
shared = PLAN.shared  # params: **shared("<rule>"): the config's seed, device, progress, allow_download


wildcard_constraints:
    dataset=r"[A-Za-z0-9_]+",
    name=r"[A-Za-z0-9_.-]+",


# Input and params functions of the explanation rules: the classifier's entry, dataset and feature cache.
def explain_entry(wc):
    return PLAN.classifiers[wc.classifier]


def explain_dataset(wc):
    return PLAN.explain_dataset(wc.classifier)


def explain_cache(wc):
    return PLAN.explain_cache(wc.classifier)
