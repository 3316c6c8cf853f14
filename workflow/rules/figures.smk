# Figures and tables: each target is a PDF plus the CSV of exactly what it plots.


rule fig8:
    input:
        all_buffer_files(),
    output:
        pdf="results/fig8.pdf",
        csv="results/fig8.csv",
    conda:
        "../../environment.yml"
    log:
        "results/logs/figures/fig8.log",
    shell:
        "macaw plot-fig8 --buffers {input} --pdf {output.pdf} --csv {output.csv} > {log} 2>&1"


rule curves_figure:
    input:
        lambda w: figure_eval_files(w.figure),
    output:
        pdf="results/{figure}.pdf",
        csv="results/{figure}.csv",
    params:
        runs=lambda w: figure_run_args(w.figure),
        title=lambda w: FIGURE_TITLES[w.figure],
    wildcard_constraints:
        figure="fig4_left|fig4_center|fig5",
    conda:
        "../../environment.yml"
    log:
        "results/logs/figures/{figure}.log",
    shell:
        "macaw plot-curves {params.runs} --title {params.title:q}"
        " --pdf {output.pdf} --csv {output.csv} > {log} 2>&1"
