"""Similarity stage (percept.similarity): DPS metrics scored on 2AFC/JND sets, LPIPS-style calibration, the flaw
analysis and the adaptation to contexts; figures fig_2afc, fig_dps_flaws, fig_dps_adaptation."""

SIM = config["similarity"]
SIM_ADAPT = PLAN.adaptation_entries
SIM_CALIBRATED = PLAN.calibrated_metrics


wildcard_constraints:
    adapt="|".join(SIM_ADAPT) or "none",
    metric="|".join(SIM_CALIBRATED) or "none",
    synthetic="synthetic_2afc_train|synthetic_2afc_val|synthetic_jnd",


rule make_dps_synthetic:
    input:
        reference=dataset_file(SIM["reference_set"]),
    output:
        similarity_data("{synthetic}"),
    params:
        per_image=SIM["two_afc"]["per_image"],
        image_size=SIM["image_size"],
        **shared("make_dps_synthetic"),
    log:
        "logs/make_dps_synthetic/{synthetic}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/make_dps_synthetic.py"


rule calibrate_dps:
    input:
        train=PLAN.two_afc_file("train"),
    output:
        weights=similarity_file("calibration/{metric}.pt"),
        history=similarity_file("calibration/{metric}.csv"),
    params:
        spec=lambda wc: next(m for m in SIM["metrics"] if m["name"] == wc.metric),
        options=SIM["calibration"],
        batch_size=SIM["batch_size"],
        **shared("calibrate_dps"),
    log:
        "logs/calibrate_dps/{metric}.log",
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/calibrate_dps.py"


rule evaluate_dps_2afc:
    input:
        **PLAN.two_afc_inputs(),
        calibrations=[similarity_file(f"calibration/{m}.pt") for m in SIM_CALIBRATED],
    output:
        table=similarity_file("two_afc.csv"),
    params:
        metrics=SIM["metrics"],
        pixel_metrics=SIM["two_afc"]["pixel_metrics"],
        calibrated=SIM_CALIBRATED,
        batch_size=SIM["batch_size"],
        **shared("evaluate_dps_2afc"),
    log:
        "logs/evaluate_dps_2afc/two_afc.log",
    benchmark:
        "benchmarks/evaluate_dps_2afc/two_afc.tsv"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/evaluate_dps_2afc.py"


rule make_dps_challenges:
    output:
        similarity_data("challenges"),
    params:
        photos=SIM["flaws"]["photos"],
        crops_per_photo=SIM["flaws"]["crops_per_photo"],
        stain_style=SIM["flaws"]["stain_style"],
        image_size=SIM["image_size"],
        **shared("make_dps_challenges"),
    log:
        "logs/make_dps_challenges/challenges.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/make_dps_challenges.py"


rule evaluate_dps_flaws:
    input:
        challenges=similarity_data("challenges"),
    output:
        table=similarity_file("flaws.csv"),
        summary=similarity_file("flaws_summary.csv"),
    params:
        options=SIM["flaws"],
        batch_size=SIM["batch_size"],
        **shared("evaluate_dps_flaws"),
    log:
        "logs/evaluate_dps_flaws/flaws.log",
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/evaluate_dps_flaws.py"


rule make_dps_distortions:
    input:
        reference=dataset_file(SIM["reference_set"]),
    output:
        similarity_data("distortions"),
    params:
        max_images=SIM["adaptation"]["max_images"],
        style=SIM["adaptation"]["distortion_style"],
        draws=PLAN.distortion_draws,
        image_size=SIM["image_size"],
        **shared("make_dps_distortions"),
    log:
        "logs/make_dps_distortions/distortions.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/make_dps_distortions.py"


# Features of the distorted images, cached once per backbone (the foundation's cache format); the adaptation
# trains on them without running the backbone per epoch.
rule cache_dps_distortion_features:
    input:
        dataset=similarity_data("distortions"),
    output:
        cache=distortion_cache("{adapt}"),
    params:
        entry=lambda wc: SIM_ADAPT[wc.adapt],
        batch_size=SIM["batch_size"],
        **shared("cache_dps_distortion_features"),
    log:
        "logs/cache_dps_distortion_features/{adapt}.log",
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/cache_dps_distortion_features.py"


rule adapt_dps:
    input:
        unpack(lambda wc: PLAN.adapt_inputs(wc.adapt)),
    output:
        table=similarity_file("adaptation/{adapt}.csv"),
    params:
        entry=lambda wc: SIM_ADAPT[wc.adapt],
        options=SIM["adaptation"],
        batch_size=SIM["batch_size"],
        checkpoint=similarity_file("adaptation/{adapt}.ckpt"),
        **shared("adapt_dps"),
    log:
        "logs/adapt_dps/{adapt}.log",
    benchmark:
        "benchmarks/adapt_dps/{adapt}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/adapt_dps.py"
