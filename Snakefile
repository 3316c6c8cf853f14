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


# The default target: every figure, table and split that exists so far. It lives here, not
# in an included file, because Snakemake 9 never picks a rule of an included file as the
# default target (not even with `default_target: True`).
rule all:
    input:
        "results/fig8.pdf",
        "results/fig8.csv",
        "results/fig6.pdf",
        "results/fig6.csv",
        expand(
            "results/{figure}.{ext}",
            figure=["fig3", "fig4_left", "fig4_center", "fig4_right", "fig5"],
            ext=["pdf", "csv"],
        ),
        "results/table1.csv",
        "results/table1.md",
        "results/summary.csv",
        "results/summary.md",
        "results/diagnostics.pdf",
        all_split_files(),
        # Fig. 9 (ML45 behaviour policies) and Fig. 7 (ML45 meta-test success) only when the
        # config builds the ml45 family.
        expand("results/{figure}.{ext}", figure=["fig9", "fig7"], ext=["pdf", "csv"])
        if "ml45" in config["families"]
        else [],
