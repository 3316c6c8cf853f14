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
