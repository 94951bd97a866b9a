"""Explanations: the classifier to explain, RISE-style components, the trained explainer, Grad-CAM, relevant
channels, one evaluation, three figures. Everything per classifier under results/explain/{classifier}/."""

EXPLAIN = config["explain"]

wildcard_constraints:
    classifier="|".join(PLAN.classifiers) or "(?!)",


rule train_classifier:
    input:
        dataset=explain_dataset,
        cache=explain_cache,
    output:
        model=explain_file("classifier.pt"),
        metrics=explain_file("classifier.json"),
    params:
        entry=explain_entry,
        **shared("train_classifier"),
    log:
        "logs/train_classifier/{classifier}.log",
    threads: 1  # a small head on cached features: one thread is fastest
    priority: 1  # the stage's chain runs single-threaded jobs one after another: started first, it is not the run's tail
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_classifier.py"


rule train_explainer:
    input:
        dataset=explain_dataset,
        classifier=explain_file("classifier.pt"),
    output:
        model=explain_file("explainer.pt"),
    params:
        options=EXPLAIN["explainer"],
        resume=explain_file("explainer.resume.pt"),
        **shared("train_explainer"),
    log:
        "logs/train_explainer/{classifier}.log",
    threads: JOB_THREADS
    priority: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_explainer.py"


rule select_channels:
    input:
        dataset=explain_dataset,
        cache=explain_cache,
    output:
        table=explain_file("channels.csv"),
        crops=explain_file("channel_crops.h5"),
    params:
        options=EXPLAIN["channels"],
        cached_taps=lambda wc: PLAN.explain_cached_taps(wc.classifier),
        **shared("select_channels"),
    log:
        "logs/select_channels/{classifier}.log",
    threads: 1
    priority: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/select_channels.py"


rule explain_rise:
    input:
        dataset=explain_dataset,
        classifier=explain_file("classifier.pt"),
    output:
        maps=explain_file("maps_rise.h5"),
    params:
        options=EXPLAIN["rise"],
        n_images=EXPLAIN["n_images"],
        **shared("explain_rise"),
    log:
        "logs/explain_rise/{classifier}.log",
    benchmark:
        "benchmarks/explain_rise/{classifier}.tsv"
    threads: 1  # OpenMP threads spin on a busy CPU: 2 threads cost 136 CPU s against 15 for one (issue 21)
    priority: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/explain_rise.py"


rule explain_baselines:
    input:
        unpack(lambda wc: PLAN.explain_baseline_inputs(wc.classifier)),
    output:
        maps=explain_file("maps_baselines.h5"),
    params:
        n_images=EXPLAIN["n_images"],
        **shared("explain_baselines"),
    log:
        "logs/explain_baselines/{classifier}.log",
    threads: JOB_THREADS
    priority: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/explain_baselines.py"


rule evaluate_explanations:
    input:
        dataset=explain_dataset,
        classifier=explain_file("classifier.pt"),
        maps=[explain_file("maps_rise.h5"), explain_file("maps_baselines.h5")],
    output:
        scores=explain_file("scores.csv"),
        summary=explain_file("summary.csv"),
    params:
        options=EXPLAIN["evaluation"],
        **shared("evaluate_explanations"),
    log:
        "logs/evaluate_explanations/{classifier}.log",
    threads: 1  # as explain_rise: one thread per job, two jobs side by side
    priority: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/evaluate_explanations.py"
