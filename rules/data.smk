"""Data stage: the embedded datasets (generated offline) and the real downloaders + converters."""


rule make_shapes:
    output:
        dataset_file("shapes"),
    params:
        options=config["datasets"]["shapes"],
        **shared("make_shapes"),
    log:
        "logs/make_shapes/shapes.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/make_shapes.py"


rule make_photos:
    output:
        dataset_file("photos"),
    params:
        options=config["datasets"]["photos"],
        **shared("make_photos"),
    log:
        "logs/make_photos/photos.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/make_photos.py"


# One download rule per dataset (download_stl10, download_svhn, …): official URL, checksum, extraction,
# atomic rename into data/raw/<source>.
for _source in DOWNLOAD_SOURCES:

    rule:
        name:
            f"download_{_source}"
        output:
            directory(raw_dir(_source)),
        params:
            source=_source,
            mirror=config["downloads"]["mirror"],
            checksums=PLAN.download_checksums(_source),
            **shared("download"),
        log:
            f"logs/download_{_source}/{_source}.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=600,
        retries: 2
        conda:
            "../envs/data.yaml"
        script:
            "../scripts/download_dataset.py"


rule prepare_dataset:
    input:
        raw_dir("{dataset}"),
    output:
        dataset_file("{dataset}"),
    wildcard_constraints:
        dataset="|".join(DOWNLOAD_SOURCES),
    params:
        name="{dataset}",
        options=lambda wc: config["downloads"]["prepare"].get(wc.dataset, {}),
    log:
        "logs/prepare_dataset/{dataset}.log",
    threads: 1
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/prepare_dataset.py"


rule prepare_imagenet_val:
    output:
        dataset_file("imagenet_val"),
    params:
        folder=config["imagenet_val"],
        options=config["downloads"]["prepare"].get("imagenet_val", {}),
    log:
        "logs/prepare_imagenet_val/imagenet_val.log",
    threads: 1
    resources:
        mem_mb=16000,
        runtime=240,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/prepare_imagenet_val.py"
