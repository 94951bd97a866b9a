"""Feature stage: (dataset, backbone, taps) → data/features/{dataset}/{name}.h5, the one HDF5 cache."""


rule cache_features:
    input:
        dataset=dataset_file("{dataset}"),
    output:
        cache=feature_file("{dataset}", "{name}"),
        stats=feature_stats_file("{dataset}", "{name}"),
    params:
        entry=lambda wc: PLAN.feature_entry(wc.dataset, wc.name),
        **shared("cache_features"),
    log:
        "logs/cache_features/{dataset}/{name}.log",
    benchmark:
        "benchmarks/cache_features/{dataset}/{name}.tsv"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/cache_features.py"
