# Stage 2: one validated HDF5 buffer per task (docs/design.md §3) with Monte-Carlo returns.


rule export_buffer:
    input:
        lambda w: behaviour_chunk_file(w.family, int(w.task)),
    output:
        "results/buffers/{family}/task{task}.h5",
    params:
        gamma=config["gamma"],
    conda:
        "../envs/macaw.yaml"
    log:
        "results/logs/buffers/{family}/task{task}.log",
    shell:
        "macaw export-buffer --lifetime {input} --task {wildcards.task}"
        " --gamma {params.gamma} --out {output} > {log} 2>&1"


rule buffers:
    input:
        all_buffer_files(),
