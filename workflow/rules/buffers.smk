# Stage 2: one validated HDF5 buffer per task (docs/design.md §3) with Monte-Carlo returns.


rule export_buffer:
    input:
        lambda w: behaviour_chunk_file(w.family, int(w.task)),
    output:
        "results/buffers/{family}/task{task}.h5",
    log:
        "results/logs/buffers/{family}/task{task}.log",
    conda:
        "../envs/macaw.yaml"
    params:
        gamma=config["gamma"],
    shell:
        "macaw export-buffer --lifetime {input} --task {wildcards.task}"
        " --gamma {params.gamma} --out {output} 2>&1 | tee {log}"


rule buffers:
    input:
        all_buffer_files(),
