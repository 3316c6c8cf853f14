# Paper Fig. 6: MAML few-shot classification with and without weight-transform layers, on
# scikit-learn's digits as a stand-in for Omniglot (macaw.fewshot). Independent of the RL
# stages: no buffers, no environments.

from macaw.fewshot import VARIANT_LABELS as FEWSHOT_LABELS


rule fewshot:
    output:
        csv="results/fewshot/{variant}/seed{seed}.csv",
        config="results/fewshot/{variant}/seed{seed}.yaml",
    log:
        "results/logs/fewshot/{variant}/seed{seed}.log",
    benchmark:
        "results/benchmarks/fewshot/{variant}/seed{seed}.tsv"
    wildcard_constraints:
        variant="|".join(FEWSHOT_LABELS),
        seed=r"\d+",
    conda:
        "../envs/macaw.yaml"
    threads: job_threads
    resources:
        runtime=lambda w: 10 if config["scale"] == "smoke" else 6 * 60,
        mem_mb=4000,
    params:
        fewshot=json.dumps(config["fewshot"]["params"]),
    shell:
        "macaw fewshot --variant {wildcards.variant} --seed {wildcards.seed}"
        " --params {params.fewshot:q} --threads {threads} --out {output.csv}"
        " --restart-on-config-change 2>&1 | tee {log}"


rule fig6:
    input:
        expand(
            "results/fewshot/{variant}/seed{seed}.{ext}",
            variant=FEWSHOT_LABELS,
            seed=config["fewshot"]["seeds"],
            ext=["csv", "yaml"],
        ),
    output:
        pdf=report(
            "results/fig6.pdf", caption="../report/fig6.rst", category=RESULTS["fig6"].category
        ),
        csv="results/fig6.csv",
    log:
        "results/logs/figures/fig6.log",
    conda:
        "../envs/macaw.yaml"
    params:
        runs=" ".join(
            f"--run {shlex.quote(label)} {seed} results/fewshot/{variant}/seed{seed}.csv"
            for variant, label in FEWSHOT_LABELS.items()
            for seed in config["fewshot"]["seeds"]
        ),
    shell:
        "macaw plot-fig6 {params.runs} --pdf {output.pdf} --csv {output.csv} 2>&1 | tee {log}"
