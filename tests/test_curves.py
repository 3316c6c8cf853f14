"""Learning-curve tables (Fig. 3, 4, 5, 7): the plotted value is the mean of an eval.csv column
over the run's test tasks."""

from __future__ import annotations

import pandas as pd
import pytest

from macaw.cli import main
from macaw.plotting.curves import RunCurve, curves_table

EVAL_CSV = """step,task_id,return,success
0,45,100.0,0.0
0,46,300.0,1.0
0,47,20.0,0.0
0,48,7.0,0.0
10,45,900.0,1.0
10,46,50.0,1.0
10,47,40.0,0.0
10,48,4000.0,1.0
"""


@pytest.fixture
def ml45_eval(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text(EVAL_CSV)
    return path


def test_success_curve_is_the_success_rate_over_test_tasks(ml45_eval):
    df = curves_table([RunCurve("ML45", "MACAW", 0, ml45_eval)], metric="success")
    assert list(df.columns) == ["panel", "label", "seed", "step", "mean_success"]
    # by hand: step 0 -> 1 of 4 tasks succeeded, step 10 -> 3 of 4
    assert df.set_index("step").mean_success.to_dict() == {0: 0.25, 10: 0.75}
    returns = curves_table([RunCurve("ML45", "MACAW", 0, ml45_eval)])
    assert returns.set_index("step").mean_return.to_dict() == {0: 106.75, 10: 1247.5}


def test_success_metric_needs_the_success_column(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("step,task_id,return\n0,2,-50.0\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['success'\]"):
        curves_table([RunCurve("cheetah-vel", "MACAW", 0, path)], metric="success")


def test_plot_curves_cli_writes_the_success_table(ml45_eval, tmp_path):
    pdf, csv = tmp_path / "fig7.pdf", tmp_path / "fig7.csv"
    assert main(["plot-curves", "--run", "ML45", "MACAW", "0", str(ml45_eval),
                 "--run", "ML45", "MACAW", "1", str(ml45_eval), "--title", "t",
                 "--metric", "success", "--pdf", str(pdf), "--csv", str(csv)]) == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"
    table = pd.read_csv(csv)
    assert table.groupby("step").mean_success.mean().to_dict() == {0: 0.25, 10: 0.75}


def test_diagnostics_table_gain_by_hand_and_train_columns(tmp_path):
    from macaw.plotting.diagnostics import DiagnosticRun, diagnostics_table

    (tmp_path / "eval.csv").write_text(
        "step,task_id,episode,return,unadapted_return\n"
        "0,1,0,-10,-12\n0,2,0,-20,-20\n5,1,0,-5,-15\n5,2,0,-8,-10\n")
    (tmp_path / "train.csv").write_text(
        "step,value_loss,adv_coef,policy_inner_lr\n5,1.5,0.02,0.001\n")
    df = diagnostics_table([DiagnosticRun("MACAW", 0, tmp_path)])
    gain = df[df.quantity == "adaptation_gain"].set_index("step").value
    assert gain.to_dict() == {0: 1.0, 5: 6.0}                # mean of (2, 0) and (10, 2)
    lam = df[df.quantity == "adv_coef"]
    assert lam.step.tolist() == [5] and lam.value.tolist() == [0.02]
    assert "value_loss" not in set(df.quantity)


def test_sparsity_table_on_every_and_on_the_common_test_tasks(tmp_path):
    """Fig. 4 right's two task sets by hand: a 3-task split tested on tasks 1, 2, 9 and a
    20-task one tested on 1, 9 (common: 1 and 9). The fast target 2, held out by the sparse
    split only, drags its whole-set mean down but not its common-set one."""
    from macaw.plotting.sparsity import sparsity_table

    def run(name, returns):
        rows = [(step, task, 0, ret + step) for step in (0, 10, 20)
                for task, ret in returns.items()]
        path = tmp_path / f"{name}.csv"
        pd.DataFrame(rows, columns=["step", "task_id", "episode", "return"]).to_csv(
            path, index=False)
        return path

    runs = [RunCurve("3", "MACAW", 0, run("sparse3", {1: -10.0, 2: -400.0, 9: -30.0})),
            RunCurve("20", "MACAW", 0, run("sparse20", {1: -20.0, 9: -40.0}))]
    df = sparsity_table(runs, last=2, common_tasks={1, 9}).set_index(["test_tasks",
                                                                       "train_tasks"])
    # last 2 evaluations: steps 10 and 20, so every return + 15 on average
    assert df.loc[("all", 3), "mean_return"] == pytest.approx((-10 - 400 - 30) / 3 + 15)
    assert df.loc[("common", 3), "mean_return"] == pytest.approx((-10 - 30) / 2 + 15)
    assert df.loc[("all", 20), "mean_return"] == df.loc[("common", 20), "mean_return"] \
        == pytest.approx(-30 + 15)
    assert len(sparsity_table(runs, last=2)) == 2          # without common tasks: one set
    with pytest.raises(ValueError, match="none of its test tasks"):
        sparsity_table(runs, last=2, common_tasks={5})
