# Figures and tables: each target is a PDF plus the CSV of exactly what it plots.


rule fig8:
    input:
        needs_family("fig8", mujoco_buffer_files()),
    output:
        pdf=report(
            "results/fig8.pdf", caption="../report/fig8.rst", category=RESULTS["fig8"].category
        ),
        csv="results/fig8.csv",
    log:
        "results/logs/figures/fig8.log",
    conda:
        "../envs/macaw.yaml"
    shell:
        "macaw plot-fig8 --buffers {input} --pdf {output.pdf} --csv {output.csv} 2>&1 | tee {log}"


rule fig9:
    input:
        needs_family("fig9", lambda _: buffer_files("ml45")),
    output:
        pdf=report(
            "results/fig9.pdf", caption="../report/fig9.rst", category=RESULTS["fig9"].category
        ),
        csv="results/fig9.csv",
    log:
        "results/logs/figures/fig9.log",
    conda:
        "../envs/macaw.yaml"
    shell:
        "macaw plot-fig9 --buffers {input} --pdf {output.pdf} --csv {output.csv} 2>&1 | tee {log}"


rule curves_figure:
    input:
        needs_family(lambda w: w.figure, figure_eval_files),
    output:
        pdf=report(
            "results/{figure}.pdf",
            caption="../report/curves.rst",
            category=report_category,
            subcategory="{figure}",
        ),
        csv="results/{figure}.csv",
    log:
        "results/logs/figures/{figure}.log",
    wildcard_constraints:
        figure="|".join(of_kind("curves")),
    conda:
        "../envs/macaw.yaml"
    params:
        runs=lambda w: figure_run_args(w.figure),
        title=lambda w: RESULTS[w.figure].title,
        metric=lambda w: RESULTS[w.figure].metric,
    shell:
        "macaw plot-curves {params.runs} --title {params.title:q} --metric {params.metric}"
        " --pdf {output.pdf} --csv {output.csv} 2>&1 | tee {log}"


rule fig4_right:
    input:
        needs_family("fig4_right", figure_eval_files),
    output:
        pdf=report(
            "results/fig4_right.pdf",
            caption="../report/fig4_right.rst",
            category=RESULTS["fig4_right"].category,
        ),
        csv="results/fig4_right.csv",
    log:
        "results/logs/figures/fig4_right.log",
    conda:
        "../envs/macaw.yaml"
    params:
        runs=figure_run_args("fig4_right"),
        title=RESULTS["fig4_right"].title,
        last=config["meta_training"].get("final_evals", 3),
        common=" ".join(map(str, sparsity_common_tasks())),
    shell:
        "macaw plot-sparsity {params.runs} --title {params.title:q} --last {params.last}"
        " --common-tasks {params.common} --pdf {output.pdf} --csv {output.csv} 2>&1 | tee {log}"


rule table1:
    input:
        needs_family("table1", online_files()),
    output:
        csv=report(
            "results/table1.csv",
            caption="../report/table1.rst",
            category=RESULTS["table1"].category,
        ),
        md="results/table1.md",
    log:
        "results/logs/figures/table1.log",
    conda:
        "../envs/macaw.yaml"
    params:
        runs=" ".join(
            f"--run {shlex.quote(METHOD_LABELS[m])} {seed} {online_file(m, seed)}"
            for m in ONLINE.methods
            for seed in online_seeds()
        ),
    shell:
        "macaw table1 {params.runs} --csv {output.csv} --md {output.md} 2>&1 | tee {log}"


rule summary:
    input:
        sorted(
            {
                f"{run_dir(family, split, m, seed)}/eval.csv"
                for family, split, _, m in summary_runs()
                for seed in run_seeds(m)
            }
        ),
    output:
        csv=report(
            "results/summary.csv",
            caption="../report/summary.rst",
            category=RESULTS["summary"].category,
        ),
        md="results/summary.md",
        json="results/summary.json",
    log:
        "results/logs/figures/summary.log",
    conda:
        "../envs/macaw.yaml"
    params:
        runs=summary_run_args(),
        last=config["meta_training"].get("final_evals", 3),
        reps=config["meta_training"].get("bootstrap_reps", 2000),
        common=summary_common_args(),
    shell:
        "macaw summary {params.runs} {params.common} --last {params.last} --reps {params.reps}"
        " --csv {output.csv} --md {output.md} 2>&1 | tee {log}"


rule diagnostics:
    input:
        needs_family(
            "diagnostics",
            [f"{d}/eval.csv" for _, _, d in diagnostic_run_dirs()],
        ),
    output:
        pdf=report(
            "results/diagnostics.pdf",
            caption="../report/diagnostics.rst",
            category=RESULTS["diagnostics"].category,
        ),
        csv="results/diagnostics.csv",
    log:
        "results/logs/figures/diagnostics.log",
    conda:
        "../envs/macaw.yaml"
    params:
        runs=" ".join(
            f"--run {shlex.quote(METHOD_LABELS[m])} {seed} {d}"
            for m, seed, d in diagnostic_run_dirs()
        ),
        title=RESULTS["diagnostics"].title,
    shell:
        "macaw plot-diagnostics {params.runs} --title {params.title:q}"
        " --pdf {output.pdf} --csv {output.csv} 2>&1 | tee {log}"
