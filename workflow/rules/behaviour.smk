# Stage 1: one behaviour policy per task, all tasks of a family trained as one batched
# ensemble; the lifetime of every task is kept (macaw.behaviour).


rule train_behaviour:
    output:
        lifetime="results/behaviour/{family}/lifetime.h5",
        policy="results/behaviour/{family}/policy.pt",
    params:
        tasks=lambda w: " ".join(map(str, family_tasks(w.family))),
        behaviour=lambda w: json.dumps(config["families"][w.family]["behaviour"]),
        seed=config["seed"],
    threads: job_threads
    resources:
        runtime=lambda w: 60 if config["scale"] == "smoke" else 24 * 60,
        mem_mb=behaviour_mem_mb,
    conda:
        "../envs/macaw.yaml"
    log:
        "results/logs/behaviour/{family}.log",
    benchmark:
        "results/benchmarks/behaviour/{family}.tsv"
    shell:
        "macaw train-behaviour --family {wildcards.family} --tasks {params.tasks}"
        " --params {params.behaviour:q} --seed {params.seed} --threads {threads}"
        " --lifetime {output.lifetime} --policy {output.policy} 2>&1 | tee {log}"
