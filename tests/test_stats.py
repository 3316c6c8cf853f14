"""Final scores by hand, and the rliable aggregates of summary.csv on runs whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from macaw.stats import SummaryRun, final_scores, learning_settled, summary_table, write_summary


def _eval_csv(path, scores_by_step: dict[int, dict[int, float]], gain: float = 0.0):
    rows = [(step, task, ep, ret + ep, ret + ep - gain)
            for step, tasks in scores_by_step.items() for task, ret in tasks.items()
            for ep in (-1, 1)]
    pd.DataFrame(rows, columns=["step", "task_id", "episode", "return", "unadapted_return"]
                 ).to_csv(path, index=False)
    return path


def test_final_score_is_the_mean_over_the_last_k_evaluations(tmp_path):
    path = _eval_csv(tmp_path / "e.csv", {0: {1: -100, 2: -50}, 10: {1: -20, 2: -10},
                                          20: {1: -10, 2: -30}}, gain=4.0)
    out = final_scores(path, last=2).set_index("task_id")
    assert out.score.to_dict() == {1: -15.0, 2: -20.0}
    assert out.gain.tolist() == [4.0, 4.0]
    assert final_scores(path, last=1).set_index("task_id").score.to_dict() == {1: -10, 2: -30}


def test_summary_iqm_mean_and_probability_of_improvement(tmp_path):
    runs = []
    for seed in range(3):
        good = {t: -10.0 * t - seed for t in range(1, 5)}
        bad = {t: -100.0 * t - seed for t in range(1, 5)}
        runs.append(SummaryRun("cv", "standard", "MACAW", seed,
                               _eval_csv(tmp_path / f"m{seed}.csv", {5: good}, gain=3.0)))
        runs.append(SummaryRun("cv", "standard", "MT+FT", seed,
                               _eval_csv(tmp_path / f"b{seed}.csv", {5: bad}, gain=-1.0)))
    table = summary_table(runs, last=1, reps=500).set_index("method")
    macaw_scores = np.array([[-10.0 * t - s for t in range(1, 5)] for s in range(3)])
    assert table.loc["MACAW", "mean"] == pytest.approx(macaw_scores.mean())
    # IQM of 12 scores: the mean of the middle 6.
    assert table.loc["MACAW", "iqm"] == pytest.approx(np.sort(macaw_scores.ravel())[3:9].mean())
    assert table.loc["MACAW", "iqm_low"] <= table.loc["MACAW", "iqm"] <= table.loc["MACAW", "iqm_high"]
    assert table.loc["MACAW", "gain"] == pytest.approx(3.0)
    assert table.loc["MT+FT", "gain"] == pytest.approx(-1.0)
    # MACAW beats MT+FT on every task and seed pair: probability of improvement 1.
    assert table.loc["MT+FT", "p_macaw_better"] == pytest.approx(1.0)
    assert np.isnan(table.loc["MACAW"].get("p_macaw_better", np.nan))
    md = tmp_path / "s.md"
    write_summary(runs, tmp_path / "s.csv", md, last=1, reps=200)
    assert "| cv | standard | MT+FT | 3 × 4 |" in md.read_text()
    import json
    metrics = json.loads((tmp_path / "s.json").read_text())
    assert metrics["cv"]["standard"]["MT+FT"]["p_macaw_better"] == pytest.approx(1.0)


def test_learning_settles_where_the_last_quarter_moves_the_iqm_less_than_its_ci(tmp_path):
    """Curves that rise by 0.1 per meta-step until step 1000, then stay flat, evaluated every
    100 steps, with a per-(seed, task) offset: cut at s, a run's final score (the mean of its
    evaluations at s - 200, s - 100 and s) is 0.1 (s - 100) + offset while it rises, so the
    last quarter moves the IQM by exactly 0.1 s / 4 there, and by 0 once both cuts are flat."""
    runs = []
    for seed in range(3):
        curve = {step: {t: 0.1 * min(step, 1000) + 7.0 * t + seed for t in range(1, 5)}
                 for step in range(0, 4001, 100)}
        runs.append(SummaryRun("cv", "standard", "MACAW", seed,
                               _eval_csv(tmp_path / f"m{seed}.csv", curve)))
    table = learning_settled(runs, [800, 2000, 4000], last=3, reps=300).set_index("steps")
    assert table.loc[800, "moved"] == pytest.approx(0.1 * 800 / 4)
    assert table.loc[800, "steps_three_quarters"] == 600
    assert table.loc[2000, "moved"] == pytest.approx(0.0, abs=1e-9)
    assert table.loc[4000, "iqm"] == pytest.approx(table.loc[2000, "iqm"])
    assert 0 < table.loc[800, "half_width"] < table.loc[800, "moved"]   # the rise is beyond it
    assert table.settled.tolist() == [False, True, True]
    with pytest.raises(ValueError, match="m0.csv: the run's last evaluation is at step 4000"):
        learning_settled(runs, [5000], reps=50)


def test_summary_scores_fig4_right_again_on_the_common_test_tasks(tmp_path, capsys):
    """`macaw summary --common-tasks 1 3 --common-splits sparse3` adds the split "sparse3,
    common test tasks": the same runs, scored on tasks 1 and 3 only (by hand: task 2 is the
    one MACAW loses), and leaves the full-test-set rows as they were."""
    import pandas as pd

    from macaw.cli import main

    args = []
    for seed in range(2):
        m = _eval_csv(tmp_path / f"m{seed}.csv", {5: {1: -10.0, 2: -90.0, 3: -20.0 - seed}})
        b = _eval_csv(tmp_path / f"b{seed}.csv", {5: {1: -30.0, 2: -10.0, 3: -40.0}})
        args += ["--run", "cv", "sparse3", "MACAW", str(seed), str(m),
                 "--run", "cv", "sparse3", "MT+FT", str(seed), str(b)]
    out = tmp_path / "s.csv"
    main(["summary", *args, "--last", "1", "--reps", "200", "--csv", str(out),
          "--md", str(tmp_path / "s.md"), "--common-tasks", "1", "3",
          "--common-splits", "sparse3"])
    table = pd.read_csv(out).set_index(["split", "method"])
    assert table.loc[("sparse3", "MACAW"), "mean"] == pytest.approx((-10 - 90 - 20.5) / 3)
    assert table.loc[("sparse3, common test tasks", "MACAW"), "mean"] == pytest.approx(-15.25)
    assert table.loc[("sparse3, common test tasks", "MT+FT"), "p_macaw_better"] == 1.0
    assert table.loc[("sparse3", "MT+FT"), "p_macaw_better"] == pytest.approx(2 / 3, abs=1e-4)
    main(["summary", *args, "--last", "1", "--reps", "200", "--csv", str(out),
          "--md", str(tmp_path / "s.md"), "--common-splits", "sparse3"])   # tasks they share
    table = pd.read_csv(out).set_index(["split", "method"])
    assert table.loc[("sparse3, common test tasks", "MACAW"), "mean"] == \
        table.loc[("sparse3", "MACAW"), "mean"]
    for extra, error in ((["--common-tasks", "4", "--common-splits", "sparse3"],
                          "m0.csv: no evaluation of test task(s) [4]"),
                         (["--common-tasks", "1"], "--common-tasks needs --common-splits"),
                         (["--common-splits", "sparse5"], "no --run of the splits")):
        assert main(["summary", *args, "--csv", str(out), "--md", str(tmp_path / "s.md"),
                     *extra]) == 2
        assert error in capsys.readouterr().err


def test_runs_on_different_test_tasks_are_refused(tmp_path):
    a = _eval_csv(tmp_path / "a.csv", {1: {1: -1.0, 2: -2.0}})
    b = _eval_csv(tmp_path / "b.csv", {1: {1: -1.0, 3: -2.0}})
    runs = [SummaryRun("cv", "s", "MACAW", 0, a), SummaryRun("cv", "s", "MACAW", 1, b)]
    with pytest.raises(ValueError, match="test tasks"):
        summary_table(runs, last=1, reps=100)


def test_probability_of_improvement_counts_each_task_equally_with_unequal_seeds(tmp_path):
    """Three MACAW seeds against one baseline seed (as Fig. 4 center's equal-params run): P is
    the share of (task, MACAW seed) pairs MACAW wins, averaged over tasks, so a baseline that
    wins three small tasks narrowly and loses one task by far has the better P and the worse
    mean: the two measure different things. The one-seed row's CIs are not CIs over seeds."""
    runs = []
    for seed in range(3):
        macaw = {1: -50.0 - seed, 2: -60.0 - seed, 3: -70.0 - seed, 4: -100.0}
        runs.append(SummaryRun("cv", "standard", "MACAW", seed,
                               _eval_csv(tmp_path / f"m{seed}.csv", {5: macaw})))
    baseline = {1: -49.0, 2: -60.5, 3: -69.0, 4: -400.0}   # MACAW wins task 2 for seed 0 only
    runs.append(SummaryRun("cv", "standard", "No WT", 0,
                           _eval_csv(tmp_path / "b.csv", {5: baseline})))
    table = summary_table(runs, last=1, reps=300).set_index("method")
    # Wins: task 1: 0/3, task 2: 1/3 (seed 0's -60 > -60.5), task 3: 0/3, task 4: 3/3.
    assert table.loc["No WT", "p_macaw_better"] == pytest.approx((0 + 1 / 3 + 0 + 1) / 4)
    assert table.loc["No WT", "mean"] < table.loc["MACAW", "mean"]
    md = tmp_path / "s.md"
    write_summary(runs, tmp_path / "s.csv", md, last=1, reps=100)
    row = next(line for line in md.read_text().splitlines() if "| No WT |" in line)
    assert "1 seed" in row and "[" not in row.split("|")[5]


def test_the_summary_is_the_same_on_every_call(tmp_path):
    """The bootstrap CIs depend only on the data and the seed, not on what drew from NumPy's
    global generator before (rliable's stratified bootstrap draws from it)."""
    runs = [SummaryRun("cv", "s", "MACAW", seed,
                       _eval_csv(tmp_path / f"m{seed}.csv",
                                 {1: {t: -10.0 * t * (1 + seed) for t in range(1, 6)}}))
            for seed in range(3)]
    first = summary_table(runs, last=1, reps=200)
    np.random.rand(7)
    state = np.random.get_state()[1].copy()
    second = summary_table(runs, last=1, reps=200)
    pd.testing.assert_frame_equal(first, second)
    assert (np.random.get_state()[1] == state).all()    # the caller's generator is untouched


def _controls_runs(tmp_path, untrained: dict[str, float], final: dict[str, float],
                   gain: dict[str, float]) -> list[SummaryRun]:
    """Three seeds per method on tasks 1-4: step 0 scores ``untrained[m] - t`` and the final
    evaluation ``final[m] - t - seed``, with adaptation gain ``gain[m]`` at every step."""
    runs = []
    for label in untrained:
        for seed in range(3):
            steps = {0: {t: untrained[label] - t for t in range(1, 5)},
                     10: {t: final[label] - t - seed for t in range(1, 5)}}
            path = _eval_csv(tmp_path / f"{label}{seed}.csv", steps, gain=gain[label])
            runs.append(SummaryRun("cv", "sparse3", label, seed, path))
    return runs


def test_controls_by_hand_and_a_testable_benchmark(tmp_path):
    """Meta-training lifts MACAW from -200 to -100 and adaptation adds 30: both controls
    pass. The control values are the hand-computed ones."""
    runs = _controls_runs(tmp_path, {"MACAW": -200.0, "MT+FT": -190.0},
                          {"MACAW": -100.0, "MT+FT": -150.0}, {"MACAW": 30.0, "MT+FT": 0.0})
    table = summary_table(runs, last=1, reps=300).set_index("method")
    untrained = np.array([[-200.0 - t for t in range(1, 5)]] * 3)
    assert table.loc["MACAW", "untrained_iqm"] == pytest.approx(
        np.sort(untrained.ravel())[3:9].mean())
    # meta-training adds (final - step 0) = 100 - seed on every task: mean 99
    assert table.loc["MACAW", "meta_adds"] == pytest.approx(99.0)
    assert table.loc["MT+FT", "meta_adds"] == pytest.approx(40.0 - 1.0)
    # final unadapted = final - gain
    final = np.array([[-100.0 - t - s for t in range(1, 5)] for s in range(3)])
    assert table.loc["MACAW", "unadapted_iqm"] == pytest.approx(
        np.sort((final - 30.0).ravel())[3:9].mean())
    assert table.loc["MACAW", "gain"] == pytest.approx(30.0)
    assert table.loc["MACAW", "testable"] and table.loc["MT+FT", "verdict"] == "testable"
    assert table.loc["MACAW", "best_trained"] == "MACAW"
    assert table.loc["MACAW", "best_untrained"] == "MT+FT"     # -190 beats -200 at step 0
    assert table.loc["MACAW", "p_trained_better"] == pytest.approx(1.0)


def test_an_untrained_network_that_adapts_as_well_makes_the_benchmark_untestable(tmp_path):
    """MT+FT's untrained network plus fine-tuning (-120) scores as well as the best trained
    method (-120): the benchmark does not need meta-learning, whoever wins."""
    runs = _controls_runs(tmp_path, {"MACAW": -200.0, "MT+FT": -119.0},
                          {"MACAW": -120.0, "MT+FT": -125.0}, {"MACAW": 20.0, "MT+FT": 50.0})
    table = summary_table(runs, last=1, reps=300)
    assert not table.testable.any()
    verdict = table.verdict.iloc[0]
    assert verdict.startswith("untestable at this scale: the best trained method (MACAW")
    assert "MT+FT's untrained network plus adaptation" in verdict
    assert "adaptation adds for no method" not in verdict


def test_adaptation_that_adds_nothing_makes_the_benchmark_untestable(tmp_path):
    """Meta-training helps, but no method's adapted policy beats its unadapted one (walker
    at the default scale): one unadapted policy serves every task."""
    runs = _controls_runs(tmp_path, {"MACAW": -300.0, "MT+FT": -300.0},
                          {"MACAW": -100.0, "MT+FT": -110.0}, {"MACAW": -1.0, "MT+FT": -20.0})
    table = summary_table(runs, last=1, reps=300)
    assert not table.testable.any()
    assert table.verdict.iloc[0] == ("untestable at this scale: adaptation adds for no method "
                                     "(the most: MACAW, -1.0 [-1.0, -1.0])")
    md = tmp_path / "s.md"
    write_summary(runs, tmp_path / "s.csv", md, last=1, reps=100)
    assert "| cv | sparse3 | untestable at this scale: adaptation adds for no method" \
        in md.read_text()
    import json
    bench = json.loads((tmp_path / "s.json").read_text())["cv"]["sparse3"]["benchmark"]
    assert bench["testable"] is False and bench["best_trained"] == "MACAW"


def test_controls_need_a_step_0_evaluation(tmp_path):
    """A run evaluated only after meta-training has no untrained control: no verdict of
    'testable' is possible."""
    runs = [SummaryRun("cv", "s", "MACAW", seed,
                       _eval_csv(tmp_path / f"m{seed}.csv", {10: {1: -1.0, 2: -2.0}}, gain=5))
            for seed in range(2)]
    table = summary_table(runs, last=1, reps=100)
    assert np.isnan(table.meta_adds).all() and not table.testable.any()
    assert "no step-0 evaluation" in table.verdict.iloc[0]
