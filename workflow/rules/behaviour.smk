# Stage 1: one behaviour policy per task, the tasks of a family trained as batched ensembles of
# families.<family>.tasks_per_job tasks (default: all in one job); the lifetime of every task is
# kept (macaw.behaviour). A task's data does not depend on the chunking (tests/test_behaviour.py).
# A killed job resumes from resume.pt; a job rerun because its params changed keeps the old
# checkpoint and replay aside (resume.stale.*) and starts afresh.


rule train_behaviour:
    output:
        lifetime="results/behaviour/{family}/chunk{chunk}/lifetime.h5",
        policy="results/behaviour/{family}/chunk{chunk}/policy.pt",
    log:
        "results/logs/behaviour/{family}/chunk{chunk}.log",
    benchmark:
        "results/benchmarks/behaviour/{family}/chunk{chunk}.tsv"
    wildcard_constraints:
        chunk=r"\d+",
    conda:
        "../envs/macaw.yaml"
    threads: job_threads
    resources:
        runtime=lambda w: 60 if config["scale"] == "smoke" else 24 * 60,
        mem_mb=behaviour_mem_mb,
    params:
        tasks=lambda w: " ".join(map(str, behaviour_chunks(w.family)[int(w.chunk)])),
        behaviour=lambda w: json.dumps(config["families"][w.family]["behaviour"]),
        seed=config["seed"],
    shell:
        "macaw train-behaviour --family {wildcards.family} --tasks {params.tasks}"
        " --params {params.behaviour:q} --seed {params.seed} --threads {threads}"
        " --lifetime {output.lifetime} --policy {output.policy} --restart-on-config-change"
        " 2>&1 | tee {log}"
