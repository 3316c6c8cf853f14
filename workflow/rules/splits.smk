# Stage 3: train/test task splits as data files (docs/design.md §2), restricted to the tasks
# built.


rule make_split:
    output:
        "results/splits/{family}/{split}.json",
    log:
        "results/logs/splits/{family}/{split}.log",
    conda:
        "../envs/macaw.yaml"
    params:
        available=lambda w: " ".join(map(str, family_tasks(w.family))),
    shell:
        "macaw make-split --family {wildcards.family} --split {wildcards.split}"
        " --available {params.available} --out {output} 2>&1 | tee {log}"


rule splits:
    input:
        all_split_files(),
