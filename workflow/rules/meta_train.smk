# Stage 4: meta-training of MACAW, its ablations and the baselines on a split's training tasks,
# with meta-test evaluation of the split's test tasks along the way (macaw.meta_train). A killed
# job resumes from checkpoint.pt (not a declared output, so Snakemake keeps it on failure);
# a job rerun because its params changed moves the old checkpoint aside and starts afresh.


rule meta_train:
    input:
        split="results/splits/{family}/{split}.json",
        buffers=lambda w: split_buffer_files(w.family, w.split),
    output:
        eval="results/runs/{family}/{split}/{method}/seed{seed}/eval.csv",
        train="results/runs/{family}/{split}/{method}/seed{seed}/train.csv",
        config="results/runs/{family}/{split}/{method}/seed{seed}/config.yaml",
    log:
        "results/logs/meta_train/{family}/{split}/{method}/seed{seed}.log",
    wildcard_constraints:
        method=run_method_pattern(),
        seed=r"\d+",
    conda:
        "../envs/macaw.yaml"
    threads: job_threads
    resources:
        gpu=1,
        runtime=lambda w: 30 if config["scale"] == "smoke" else 12 * 60,
        mem_mb=lambda w: data_mem_mb(w.family, split_buffer_files(w.family, w.split)),
    params:
        method=lambda w: meta_train_params(w.family, w.method)[0],
        meta=lambda w: json.dumps(meta_train_params(w.family, w.method)[1]),
        run_dir=lambda w, output: os.path.dirname(output.eval),
        gamma=config["gamma"],
    shell:
        "macaw meta-train --family {wildcards.family} --split {input.split}"
        " --buffers-dir results/buffers/{wildcards.family} --method {params.method}"
        " --seed {wildcards.seed} --params {params.meta:q} --gamma {params.gamma}"
        " --threads {threads} --run-dir {params.run_dir} --restart-on-config-change"
        " 2>&1 | tee {log}"


rule runs:
    input:
        sorted({f for fig in RESULTS for f in figure_eval_files(fig)}),
        online_files(),


rule online_finetune:
    input:
        eval="results/runs/{family}/{split}/{method}/seed{seed}/eval.csv",
        buffers=lambda w: split_test_buffer_files(w.family, w.split),
    output:
        "results/online/{family}/{split}/{method}/seed{seed}.csv",
    log:
        "results/logs/online/{family}/{split}/{method}/seed{seed}.log",
    wildcard_constraints:
        method="|".join(ONLINE.methods),
        seed=r"\d+",
    conda:
        "../envs/macaw.yaml"
    threads: job_threads
    resources:
        runtime=lambda w: 30 if config["scale"] == "smoke" else 12 * 60,
        mem_mb=lambda w: data_mem_mb(w.family, split_test_buffer_files(w.family, w.split)),
    params:
        run_dir=lambda w, input: os.path.dirname(input.eval),
        online=json.dumps(config["online"]),
    shell:
        "macaw online-finetune --run-dir {params.run_dir} --buffers {input.buffers}"
        " --params {params.online:q} --seed {wildcards.seed} --threads {threads}"
        " --out {output} --restart-on-config-change 2>&1 | tee {log}"
