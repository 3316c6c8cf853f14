# Studies: meta-training runs beside the figures' (docs/results/), declared in a config overlay's
# `studies` section (config/studies/*.yaml) and built by the `studies` target:
#   snakemake --cores all studies --configfile config/studies/fidelity.yaml
# A run is results/studies/{study}/{split}/{name}/seed{seed}/ (eval.csv, train.csv,
# config.yaml, checkpoint.pt; test_time_steps.csv when the run asks for test-time steps).


rule memorisation_split:
    output:
        "results/studies/{study}/splits/{split}-memorise.json",
    log:
        "results/logs/studies/{study}/splits/{split}-memorise.log",
    conda:
        "../envs/macaw.yaml"
    params:
        family=lambda w: config["studies"][w.study]["family"],
        available=lambda w: " ".join(map(str, family_tasks(config["studies"][w.study]["family"]))),
    shell:
        "macaw make-split --family {params.family} --split {wildcards.split}"
        " --available {params.available} --memorisation-check --out {output} 2>&1 | tee {log}"


rule study_run:
    input:
        split=study_split_file,
        buffers=lambda w: split_buffer_files(
            study_run_spec(w.study, w.split, w.name, w.seed)[0], w.split
        ),
    output:
        eval="results/studies/{study}/{split}/{name}/seed{seed}/eval.csv",
        train="results/studies/{study}/{split}/{name}/seed{seed}/train.csv",
        config="results/studies/{study}/{split}/{name}/seed{seed}/config.yaml",
    log:
        "results/logs/studies/{study}/{split}/{name}/seed{seed}.log",
    wildcard_constraints:
        seed=r"\d+",
    conda:
        "../envs/macaw.yaml"
    threads: job_threads
    resources:
        gpu=1,
        runtime=lambda w: 30 if config["scale"] == "smoke" else 12 * 60,
        mem_mb=lambda w: data_mem_mb(
            study_run_spec(w.study, w.split, w.name, w.seed)[0],
            split_buffer_files(study_run_spec(w.study, w.split, w.name, w.seed)[0], w.split),
        ),
    params:
        family=lambda w: study_run_spec(w.study, w.split, w.name, w.seed)[0],
        method=lambda w: study_run_spec(w.study, w.split, w.name, w.seed)[1],
        meta=lambda w: json.dumps(study_run_spec(w.study, w.split, w.name, w.seed)[2]),
        memorise=lambda w: (
            " --memorisation-check" if study_run_spec(w.study, w.split, w.name, w.seed)[3] else ""
        ),
        run_dir=lambda w, output: os.path.dirname(output.eval),
        gamma=config["gamma"],
    shell:
        "macaw meta-train --family {params.family} --split {input.split}"
        " --buffers-dir results/buffers/{params.family} --method {params.method}"
        " --seed {wildcards.seed} --params {params.meta:q} --gamma {params.gamma}"
        " --threads {threads} --run-dir {params.run_dir} --restart-on-config-change"
        "{params.memorise} 2>&1 | tee {log}"


rule study_test_time_steps:
    input:
        eval="results/studies/{study}/{split}/{name}/seed{seed}/eval.csv",
        buffers=lambda w: split_test_buffer_files(
            study_run_spec(w.study, w.split, w.name, w.seed)[0], w.split
        ),
    output:
        "results/studies/{study}/{split}/{name}/seed{seed}/test_time_steps.csv",
    log:
        "results/logs/studies/{study}/{split}/{name}/seed{seed}.test_time_steps.log",
    conda:
        "../envs/macaw.yaml"
    threads: job_threads
    params:
        run_dir=lambda w, input: os.path.dirname(input.eval),
        steps=lambda w: " ".join(map(str, study_run_spec(w.study, w.split, w.name, w.seed)[4])),
    shell:
        "macaw test-time-steps --run-dir {params.run_dir} --buffers {input.buffers}"
        " --steps {params.steps} --value-steps 1 --threads {threads} --out {output}"
        " 2>&1 | tee {log}"


rule studies:
    input:
        study_outputs(),
