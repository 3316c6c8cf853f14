# Stage 3: train/test task splits as data files (docs/design.md §2), restricted to the tasks built.


rule make_split:
    output:
        "results/splits/{family}/{split}.json",
    params:
        available=lambda w: " ".join(map(str, family_tasks(w.family))),
    conda:
        "../envs/macaw.yaml"
    log:
        "results/logs/splits/{family}/{split}.log",
    shell:
        "macaw make-split --family {wildcards.family} --split {wildcards.split}"
        " --available {params.available} --out {output} > {log} 2>&1"


rule splits:
    input:
        all_split_files(),
