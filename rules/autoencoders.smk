"""Deep perceptual loss: autoencoders trained with pixel, perceptual or feature-prediction loss and the
predictors judging their embeddings; the loss-network x extraction-point grid (one job per cell, the
tasks from percept.loss_networks.registry) and its analysis."""

from percept.loss_networks.registry import TASKS as LOSS_NETWORK_TASKS

AE_RUNS = PLAN.autoencoder_runs
GRID_CELLS = PLAN.grid_cells
AE_RUN = {"dataset": "{dataset}", "loss": "{loss}", "embedding_size": "{z}"}  # the paths as wildcards


wildcard_constraints:
    loss="pixel|perceptual|feature_prediction|feature_autoencoder|feature_to_image_perceptual|feature_to_image_pixel",
    z=r"\d+",
    network=r"[A-Za-z0-9_.-]+",
    tap=r"[A-Za-z0-9_.]+",


rule make_small_objects:
    output:
        dataset_file("small_objects"),
    params:
        options=config["datasets"].get("small_objects", {}),
        **shared("make_small_objects"),
    log:
        "logs/make_small_objects/small_objects.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/make_small_objects.py"


rule train_autoencoder:
    input:
        dataset=dataset_file("{dataset}"),
        targets=lambda wc: PLAN.autoencoder_targets(wc.dataset, wc.loss),
    output:
        model=autoencoder_file(AE_RUN, "model.pt"),
        epochs=autoencoder_file(AE_RUN, "epochs.json"),
        embeddings=embeddings_file(AE_RUN),
    params:
        options={k: v for k, v in config.get("autoencoders", {}).items() if k != "predictors"},
        **shared("train_autoencoder"),
    log:
        "logs/train_autoencoder/{dataset}/{loss}-z{z}.log",
    benchmark:
        "benchmarks/train_autoencoder/{dataset}/{loss}-z{z}.tsv"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_autoencoder.py"


rule train_predictors:
    input:
        dataset=dataset_file("{dataset}"),
        embeddings=embeddings_file(AE_RUN),
    output:
        autoencoder_file(AE_RUN, "predictors.csv"),
    params:
        options=config.get("autoencoders", {}).get("predictors"),
        **shared("train_predictors"),
    log:
        "logs/train_predictors/{dataset}/{loss}-z{z}.log",
    threads: JOB_THREADS
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_predictors.py"


rule summarize_autoencoders:
    input:
        predictors=[autoencoder_file(r, "predictors.csv") for r in AE_RUNS],
        epochs=[autoencoder_file(r, "epochs.json") for r in AE_RUNS],
    output:
        runs=autoencoder_summary("predictors.csv"),
        summary=autoencoder_summary("summary.csv"),
        speed=autoencoder_summary("speed.json"),
    log:
        "logs/summarize_autoencoders/summary.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/summarize_autoencoders.py"


# One rule per registered task (loss_network_dimensionality_reduction, …), one job per grid cell.
for _task in LOSS_NETWORK_TASKS:

    rule:
        name:
            f"loss_network_{_task}"
        input:
            unpack(lambda wc, task=_task: PLAN.cell_inputs(task, wc.dataset, wc.network, wc.tap)),
        output:
            cell_path({"task": _task, "dataset": "{dataset}", "network": "{network}", "tap": "{tap}"}),
        params:
            task=_task,
            cell=lambda wc, task=_task: PLAN.cell(task, wc.dataset, wc.network, wc.tap),
            options=config.get("loss_networks", {}).get("tasks", {}).get(_task),
            **shared("loss_network"),
        log:
            f"logs/loss_network_{_task}/{{dataset}}/{{network}}/{{tap}}.log",
        benchmark:
            f"benchmarks/loss_network_{_task}/{{dataset}}/{{network}}/{{tap}}.tsv"
        threads: JOB_THREADS
        resources:
            gpu=1,
            mem_mb=8000,
            runtime=240,
        conda:
            "../envs/torch.yaml"
        script:
            "../scripts/run_loss_network_cell.py"


rule analyze_loss_networks:
    input:
        [cell_path(c) for c in GRID_CELLS],
    output:
        scores=loss_network_file("scores.csv"),
        ranks=loss_network_file("ranks.csv"),
        correlation=loss_network_file("imagenet_correlation.csv"),
    log:
        "logs/analyze_loss_networks/analysis.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/analyze_loss_networks.py"
