"""Shape translation (ICIP 2019): the offline two-domain set, the frozen shape judge, one translator per
ablation variant (wildcard), its scores, the tidy ablation table and the figure."""

TRANSLATION = PLAN.translation  # None: the stage is off
TRANSLATION_VARIANTS = PLAN.translation_variants

wildcard_constraints:
    variant=r"[A-Za-z0-9_]+",


rule make_translation_domains:
    output:
        dataset_file("translation_shapes"),
    params:
        options=TRANSLATION["domains"] if TRANSLATION else {},
        **shared("make_translation_domains"),
    log:
        "logs/make_translation_domains/translation_shapes.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/make_translation_domains.py"


rule prepare_unpaired_folder:
    output:
        dataset_file("unpaired_folder"),
    params:
        folder=TRANSLATION["folder"]["path"] if TRANSLATION else None,
        options={k: v for k, v in TRANSLATION["folder"].items() if k != "path"} if TRANSLATION else {},
    log:
        "logs/prepare_unpaired_folder/unpaired_folder.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/prepare_unpaired_folder.py"


rule train_translation_judge:
    input:
        dataset=PLAN.translation_dataset() if TRANSLATION else [],
    output:
        judge=translation_file("judge.pt"),
        scores=translation_file("scores.csv", "identity"),
        examples=translation_file("examples.h5", "identity"),
    params:
        options=PLAN.translation_options(["model", "judge", "metric", "evaluation", "n_show"]) if TRANSLATION else {},
        **shared("train_translation_judge"),
    log:
        "logs/train_translation_judge/judge.log",
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_translation_judge.py"


# One job per ablation variant: train, then score its translations with the frozen judge.
rule train_translation:
    input:
        dataset=PLAN.translation_dataset() if TRANSLATION else [],
        judge=translation_file("judge.pt"),
    output:
        model=translation_file("model.pt", "{variant}"),
        history=translation_file("history.csv", "{variant}"),
        timing=translation_file("timing.json", "{variant}"),
        scores=translation_file("scores.csv", "{variant}"),
        examples=translation_file("examples.h5", "{variant}"),
    wildcard_constraints:
        variant="|".join(TRANSLATION_VARIANTS) or "none",
    params:
        options=PLAN.translation_options() if TRANSLATION else {},
        **shared("train_translation"),
    log:
        "logs/train_translation/{variant}.log",
    benchmark:
        "benchmarks/train_translation/{variant}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=240,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_translation.py"


rule summarize_translation:
    input:
        scores=PLAN.translation_results("scores.csv", identity=True),
        timing=PLAN.translation_results("timing.json"),
    output:
        per_image=translation_file("per_image.csv"),
        ablation=translation_file("ablation.csv"),
        timing=translation_file("timing.json"),
    log:
        "logs/summarize_translation/summary.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/summarize_translation.py"
