"""Self-supervised stage: MPCS (magnification prior contrastive similarity) pretraining and its
label-efficiency evaluation; the embedded multi-magnification dataset."""

MPCS = config["mpcs"]


rule make_magnification:
    output:
        dataset_file("magnification"),
    params:
        options=config["datasets"]["magnification"],
        **shared("make_magnification"),
    log:
        "logs/make_magnification/magnification.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/make_magnification.py"


rule pretrain_mpcs:
    input:
        dataset=dataset_file("{dataset}"),
    output:
        model=mpcs_model("{dataset}", "{backbone}", "{fold}", "{strategy}"),
        history=mpcs_file("{dataset}", "pretrain_{strategy}.csv", "{backbone}", "{fold}"),
    wildcard_constraints:
        backbone="|".join(MPCS["backbones"]),
        strategy="ordered|random|fixed",
        fold=r"\d+",
    params:
        checkpoint=mpcs_checkpoint("{dataset}", "{backbone}", "{fold}", "pretrain_{strategy}"),
        folds=MPCS["folds"],
        init=MPCS["pretrain"]["init"],
        options=lambda wc: {**{k: v for k, v in MPCS["pretrain"].items() if k not in ("strategies", "init")},
                            "image_size": MPCS["image_size"]},
        **shared("pretrain_mpcs"),
    log:
        "logs/pretrain_mpcs/{dataset}/{backbone}/fold{fold}/{strategy}.log",
    benchmark:
        "benchmarks/pretrain_mpcs/{dataset}/{backbone}/fold{fold}/{strategy}.tsv"
    threads: 1  # one thread per job, two jobs side by side: OpenMP threads spin badly on a busy CPU
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=1440,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/pretrain_mpcs.py"


rule finetune_mpcs:
    input:
        unpack(lambda wc: pretrained_input(wc.dataset, wc.backbone, wc.fold, wc.encoder)),
        dataset=dataset_file("{dataset}"),
    output:
        mpcs_file("{dataset}", "{encoder}.csv", "{backbone}", "{fold}"),
    wildcard_constraints:
        backbone="|".join(MPCS["backbones"]),
        encoder="mpcs_(ordered|random|fixed)|baseline_(imagenet|random)",
        fold=r"\d+",
    params:
        checkpoint=mpcs_checkpoint("{dataset}", "{backbone}", "{fold}", "{encoder}"),
        folds=MPCS["folds"],
        options=lambda wc: {**MPCS["finetune"], "image_size": MPCS["image_size"]},
        **shared("finetune_mpcs"),
    log:
        "logs/finetune_mpcs/{dataset}/{backbone}/fold{fold}/{encoder}.log",
    benchmark:
        "benchmarks/finetune_mpcs/{dataset}/{backbone}/fold{fold}/{encoder}.tsv"
    threads: 1  # one thread per job, two jobs side by side: OpenMP threads spin badly on a busy CPU
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=1440,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/finetune_mpcs.py"


rule summarize_mpcs:
    input:
        runs=PLAN.mpcs_runs("{dataset}"),
        pretrain=PLAN.mpcs_pretrain_histories("{dataset}"),
    output:
        runs=mpcs_file("{dataset}", "runs.csv"),
        accuracy=mpcs_file("{dataset}", "accuracy.csv"),
        pretrain=mpcs_file("{dataset}", "pretrain.csv"),
    log:
        "logs/summarize_mpcs/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/figures.yaml"
    script:
        "../scripts/summarize_mpcs.py"
