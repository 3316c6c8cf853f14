# MACAW reproduction pipeline. Stages live in workflow/rules/, one file each; see README.
#   snakemake --cores all                                   # default scale, every target
#   snakemake --cores all --configfile config/smoke.yaml    # the whole DAG in minutes


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/behaviour.smk"
include: "workflow/rules/buffers.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/meta_train.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/fewshot.smk"


# The default target: every figure, table and split that this config's families can build
# (Fig. 7 and 9 need ml45; Fig. 4, Table 1 and the diagnostics need cheetah-vel). It lives here, not
# in an included file, because Snakemake 9 never picks a rule of an included file as the
# default target (not even with `default_target: True`).
rule all:
    input:
        expand(
            "results/{target}.{ext}",
            target=built_targets(["fig8", "fig6", "fig3", "fig4_left", "fig4_center",
                                  "fig4_right", "fig5", "diagnostics", "fig9", "fig7"]),
            ext=["pdf", "csv"],
        ),
        expand("results/table1.{ext}", ext=["csv", "md"]) if built_targets(["table1"]) else [],
        "results/summary.csv",
        "results/summary.md",
        all_split_files(),
