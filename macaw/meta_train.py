"""Meta-training: one loop for every method, with evaluation, checkpoints and resume.

A run lives in ``results/runs/{family}/{split}/{method}/seed{seed}/``:

- ``config.yaml``: the resolved config;
- ``checkpoint.pt``: the latest good state;
- ``eval.csv``: ``step, task_id, episode, return, unadapted_return`` -- meta-test episodes,
  every ``eval_every`` meta-steps and at step 0 (before meta-training). Each row is one
  deterministic episode after adapting on its own, independently drawn adaptation batch
  (``eval_episodes`` rows per test task and evaluation). ``unadapted_return`` is an episode of
  the meta-policy *before* adaptation on the same task with the same environment seed, so
  ``return - unadapted_return`` is the adaptation gain. Families with a success flag (ML45)
  add ``success``, 1.0 if the episode succeeded at any step (Fig. 7);
- ``train.csv``: per ``eval_every`` steps the mean training losses since the last row, and
  for MACAW the learned inner rates, lambda, and the value loss on held-out (outer)
  transitions before and after the inner step (diagnostics of the single adaptation step).

Data (docs/design.md §4.1, the authors' code): per meta-step ``tasks_per_batch`` training tasks; for
each an inner batch of ``inner_batch`` *consecutive rows* of its inner window sub-sampled with
stride ``inner_stride`` (so with the authors' 7 it spans ~9 episodes), and an outer batch
of ``outer_batch`` rows drawn uniformly from its outer window sub-sampled with
``outer_stride``, never sharing a transition with the inner batch (docs/design.md §4; the authors
did not enforce this). The windows are the whole lifetime (``all``, the authors') or the first /
middle / last ``window_episodes`` episodes (bad / medium / good, Fig. 4 left). Meta-test
adaptation batches are uniform over the inner window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import field
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
import yaml
from pydantic import Field
from tqdm.auto import tqdm

from macaw.algos import registry
from macaw.algos.base import BatchDemand, MetaLearner
from macaw.algos.macaw import MACAWConfig
from macaw.data import WINDOWS, TaskData
from macaw.data.buffer import check_gamma
from macaw.data.splits import check_overlap
from macaw.data.windows import window_rows_bound
from macaw.envs import get_family
from macaw.evaluate import evaluate_tasks
from macaw.fields import NonNegativeInt, PositiveInt, config_class, parse_config
from macaw.io import atomic_path, remove_partial_writes, write_csv
from macaw.provenance import provenance
from macaw.runs import (EVALUATION, Checkpoint, load_state, non_finite, pick_device,
                        run_lock, stream_seed)

log = logging.getLogger(__name__)



BatchSize = Annotated[int, Field(ge=2)]
"""Transitions per task in a batch (two at least: advantages are normalised by their unbiased
standard deviation over the batch)."""


def _with_method_sections(cls):
    """Give ``cls`` a ``dict`` field, empty by default, for every baseline section of the
    method registry (:func:`macaw.algos.registry.baseline_sections`), after its own fields:
    a baseline with hyperparameters of its own is one registry entry, no field here."""
    for section in registry.baseline_sections():
        cls.__annotations__[section] = "dict"
        setattr(cls, section, field(default_factory=dict))
    return cls


@config_class
@_with_method_sections
class MetaTrainConfig:
    """One meta-training run."""

    family: str
    """Task family, e.g. ``cheetah-vel``."""
    method: str = "macaw"
    """A method of :data:`macaw.algos.registry.METHODS` (every one meta-trains through
    :func:`run_meta_training` and meta-tests through :func:`macaw.evaluate.evaluate_tasks`)."""
    seed: NonNegativeInt = 0
    """Seeds networks, task/batch sampling and evaluation rollouts."""
    steps: PositiveInt = 10_000
    """Meta-training steps."""
    eval_every: PositiveInt = 500
    """Meta-test every test task every this many steps (and at step 0)."""
    checkpoint_every: PositiveInt = 500
    """Save a resumable checkpoint every this many steps."""
    tasks_per_batch: PositiveInt = 5
    """Training tasks per meta-step (Table 4: 5)."""
    inner_batch: BatchSize = 256
    """Transitions per task in the inner (adaptation) batch."""
    outer_batch: BatchSize = 256
    """Transitions per task in the outer batch."""
    eval_batch: BatchSize = 256
    """Transitions of the test task's buffer used to adapt at meta-test."""
    eval_episodes: PositiveInt = 3
    """Meta-test episodes per test task and evaluation, each adapted on its own independently
    drawn adaptation batch (the authors: 1)."""
    eval_unadapted: bool = True
    """Also roll out the unadapted meta-policy in every evaluation episode (the
    ``unadapted_return`` column: the adaptation gain's baseline)."""
    inner_window: Literal[WINDOWS] = "all"
    """Window of the inner / meta-test adaptation data: all (the whole lifetime, the
    authors' standard), bad, medium or good (Fig. 4 left)."""
    outer_window: Literal["all", "good"] = "all"
    """Window of the outer batches (and of MT+FT's and PEARL's RL batches): all or good."""
    window_episodes: PositiveInt = 500
    """Episodes per bad / medium / good window (paper: 500)."""
    outer_stride: PositiveInt = 7
    """Stride of the outer window: every outer_stride-th transition (authors: 7)."""
    inner_stride: PositiveInt = 7
    """Stride of the inner window (authors: 7; 1 in their data-quality ablation)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
    macaw: MACAWConfig = field(default_factory=MACAWConfig)
    """MACAW hyperparameters (ablations and Meta-BC apply their switches on top)."""
    # Then one section per baseline of the method registry (``pearl``, ``mt_ft``), added by
    # :func:`_with_method_sections`: the fields of its config class, checked by from_dict.

    RENAMED: ClassVar[dict[str, str]] = {
        "inner_quality": "inner_window", "outer_quality": "outer_window",
        "window_trajectories": "window_episodes", "buffer_skip": "outer_stride",
        "inner_buffer_skip": "inner_stride"}
    """Old field name -> its new name (:func:`macaw.fields.parse_config` names it; a run
    directory written before the rename is read with :func:`saved_config`)."""

    @classmethod
    def from_dict(cls, values: dict, where: str = "meta-training config") -> "MetaTrainConfig":
        """Checked: every field's name, type and range (its annotation), the method, and the
        baselines' sections (``pearl``, ``mt_ft``) against their config classes; errors
        start with ``where``."""
        cfg = parse_config(cls, values, where)
        if cfg.method not in registry.METHODS:
            raise ValueError(f"{where}: method {cfg.method!r} unknown; "
                             f"expected one of {tuple(registry.METHODS)}")
        for section in registry.baseline_sections():
            if getattr(cfg, section) or registry.get_method(cfg.method).section == section:
                parse_config(registry.config_class(section), getattr(cfg, section),
                             f"{where}, section {section!r}")
        return cfg


SAVED_RENAMES = {"macaw": {"value_target_polyak": ("value_target_tau",
                                                   lambda p: round(1 - p, 12))},
                 "pearl": {"discount": ("gamma", lambda g: g)}}
"""Renamed fields of the sections (new name, and the old value's new one), for
:func:`saved_config`."""


def saved_config(values: dict) -> dict:
    """A run's saved config (``config.yaml``, a checkpoint's ``config``) with the fields that
    were renamed (:attr:`MetaTrainConfig.RENAMED`, :data:`SAVED_RENAMES`) under their new names,
    so that a run directory written before a rename resumes and loads as it was (a config the
    user writes still fails with the old name)."""
    out = {MetaTrainConfig.RENAMED.get(k, k): v for k, v in values.items()}
    for section, renames in SAVED_RENAMES.items():
        if isinstance(out.get(section), dict):
            out[section] = dict(out[section])
            for old, (new, convert) in renames.items():
                if old in out[section]:
                    out[section][new] = convert(out[section].pop(old))
    return out


def build_learner(cfg: MetaTrainConfig, obs_dim: int, act_dim: int, n_train_tasks: int,
                  device: torch.device) -> MetaLearner:
    """The method ``cfg.method``, its parameters on ``device``."""
    return registry.build(cfg, obs_dim, act_dim, n_train_tasks).to(device)


RUN_FILES = ("config.yaml", "eval.csv", "train.csv", "checkpoint.pt")
"""The files meta-training writes in its run directory (besides the lock)."""


EVALUATION_FIELDS = ("eval_episodes", "eval_unadapted", "eval_batch")
"""Fields that change how a run is evaluated, never how it trains (tested: the training log
of a re-evaluated run is identical)."""


def evaluation_seed(cfg: MetaTrainConfig, step: int) -> int:
    """Seed of the evaluation at ``step`` (adaptation batches and environment seeds): its own
    SeedSequence stream of the run's seed, the same for every method of a seed."""
    return stream_seed(cfg.seed, EVALUATION, step)


EVAL_FORMATS = {"return": ".6f", "unadapted_return": ".6f", "success": ".1f"}
"""``eval.csv``'s number formats (the other columns are integers)."""


def write_train_csv(path: Path, train_rows: list[dict[str, float]]) -> None:
    """``train.csv``: one row per evaluation, the union of the rows' columns."""
    columns = list(dict.fromkeys(k for row in train_rows for k in row)) or ["step"]
    write_csv(path, columns, train_rows, default=".6g")


def check_tasks(cfg: MetaTrainConfig, train: list[TaskData], test: list[TaskData],
                expected_task_ids: tuple[list[int], list[int]] | None = None,
                memorisation_check: bool = False, gamma: float | None = None) -> None:
    """Every buffer is of ``cfg.family`` (and, given ``gamma``, the config's discount, of
    that ``gamma``), no task is twice among the training (or test) tasks, given the split's
    ids each file holds the task it should, and no test task is a training task unless the
    family trains and tests on the same tasks (cheetah-dir) or ``memorisation_check``
    (:func:`macaw.data.splits.check_overlap`)."""
    for task in (*train, *test):
        if task.buffer.family != cfg.family:
            raise ValueError(f"{task.buffer.path}: attribute 'family' is "
                             f"{task.buffer.family!r}; expected {cfg.family!r}")
        if gamma is not None:
            check_gamma(task.buffer.path, task.buffer.gamma, gamma)
    gammas = sorted({t.buffer.gamma for t in (*train, *test)})
    if len(gammas) > 1:
        files = ", ".join(str(t.buffer.path) for t in (*train, *test))
        raise ValueError(f"{cfg.family}: the buffers' attribute 'gamma' differ ({gammas}); "
                         f"expected one discount ({files})")
    if expected_task_ids is not None:
        for tasks, ids, role in ((train, expected_task_ids[0], "training"),
                                 (test, expected_task_ids[1], "test")):
            for task, expected in zip(tasks, ids):
                if task.task_id != expected:
                    raise ValueError(f"{task.buffer.path}: attribute 'task_id' is "
                                     f"{task.task_id}; the split's {role} task here is "
                                     f"{expected}")
    for tasks, role in ((train, "training"), (test, "test")):
        ids = [t.task_id for t in tasks]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{cfg.family}: a {role} task appears twice: {sorted(ids)} "
                             f"({', '.join(str(t.buffer.path) for t in tasks)})")
    check_overlap(cfg.family, [t.task_id for t in train], [t.task_id for t in test],
                  memorisation_check, f"meta-training {cfg.family}")


def _window_advice() -> str:
    return ("use smaller batches, a larger window_episodes or a smaller outer_stride / "
            "inner_stride")


def check_batches_fit(cfg: MetaTrainConfig, lifetime_steps: int, episode_steps: int,
                      where: str) -> None:
    """Refuse batches that no buffer of a ``lifetime_steps``-step behaviour lifetime (episodes
    of at most ``episode_steps``) can give: the training step's inner and outer batches
    (:func:`macaw.algos.registry.batch_demand`) and the meta-test's ``eval_batch`` against the
    most rows their windows can hold (:func:`macaw.data.windows.window_rows_bound`). The
    workflow runs it on every run's config before any job; :func:`check_windows` is the exact
    check on the buffers themselves."""
    demand = registry.batch_demand(cfg)
    inner = window_rows_bound(lifetime_steps, episode_steps, cfg.inner_window,
                              cfg.window_episodes, cfg.inner_stride)
    outer = window_rows_bound(lifetime_steps, episode_steps, cfg.outer_window,
                              cfg.window_episodes, cfg.outer_stride)
    problems = [f"{name} is {rows}, but its {window} window holds at most {most} rows"
                for name, rows, window, most in (
                    (demand.fields[1], demand.inner, f"inner ({cfg.inner_window})", inner),
                    ("eval_batch", cfg.eval_batch, f"inner ({cfg.inner_window})", inner),
                    (demand.fields[2], demand.outer, f"outer ({cfg.outer_window})", outer))
                if rows > most]
    if problems:
        raise ValueError(f"{where}: {'; '.join(problems)} (lifetimes of {lifetime_steps} "
                         f"steps, episodes of at most {episode_steps}, window_episodes "
                         f"{cfg.window_episodes}, inner_stride "
                         f"{cfg.inner_stride}, outer_stride {cfg.outer_stride}); "
                         f"{_window_advice()}")


def check_windows(cfg: MetaTrainConfig, demand: BatchDemand, train: list[TaskData],
                  test: list[TaskData]) -> None:
    """Every training task's windows hold the batches a step draws (an outer batch disjoint
    from the inner one needs its rows beside those the inner batch may take), and every test
    task's inner window holds ``eval_batch``: checked before the run writes anything, where a
    failing draw would stop it only at its first step, after the step-0 outputs."""
    for task in train:
        shared = np.intersect1d(task.inner_window, task.outer_window).size \
            if demand.disjoint else 0
        needs = ((demand.fields[1], demand.inner, "inner", task.inner_window.size),
                 (demand.fields[2], demand.outer + min(demand.inner, shared), "outer",
                  task.outer_window.size))
        for name, rows, window, size in needs:
            if rows > size:
                raise ValueError(f"{task.buffer.path}: task {task.task_id}: {name} needs "
                                 f"{rows} rows of its {window} window, which has {size}; "
                                 f"{_window_advice()}")
    for task in test:
        if cfg.eval_batch > task.inner_window.size:
            raise ValueError(f"{task.buffer.path}: test task {task.task_id}: eval_batch "
                             f"{cfg.eval_batch} is more than its inner window's "
                             f"{task.inner_window.size} rows; {_window_advice()}")


def _check_finite_parameters(model, run_dir: Path, step: int, last_good) -> None:
    bad = non_finite(model.state_dict())
    if bad:
        raise FloatingPointError(
            f"{run_dir}: non-finite parameters {bad[:5]} at meta-step {step}; the last good "
            f"checkpoint (step {last_good}) is kept")


def run_meta_training(cfg: MetaTrainConfig, train_buffers: list[Path],
                      test_buffers: list[Path], run_dir: Path, progress: bool = True,
                      expected_task_ids: tuple[list[int], list[int]] | None = None,
                      restart_on_config_change: bool = False, memorisation_check: bool = False,
                      gamma: float | None = None) -> Path:
    """Meta-train ``cfg.method`` on the training tasks, meta-testing on the test tasks every
    ``eval_every`` steps; resumes from ``run_dir/checkpoint.pt`` if present.

    The buffers are checked (:func:`check_tasks`) before anything is written: a test task
    that is a training task is refused (but on cheetah-dir) unless ``memorisation_check``,
    which ``config.yaml`` and the checkpoint record; given ``gamma`` (the config's discount)
    every buffer's ``gamma`` must equal it.

    The rule for a checkpoint written with another config: if only ``steps`` changed (and
    the checkpoint is not past the new value) the run continues, so raising ``steps`` extends
    a finished run exactly as if it had been asked for from the start (when the old value lay
    on the ``eval_every`` / ``checkpoint_every`` grid; otherwise the curve keeps the extra
    evaluation at the old last step). Any other change is refused with the differing fields
    named, or with ``restart_on_config_change`` (what Snakemake asks for when a param
    changed) the old checkpoint is moved aside to ``checkpoint.stale.pt`` and the run starts
    afresh. A change of :data:`EVALUATION_FIELDS` alone is never refused: only the last
    checkpoint is kept (a MACAW model is ~20 MB, too much to snapshot at every evaluation), so
    the run is re-evaluated by re-running its training, which reproduces the same weights
    because training never draws from the evaluation's RNG. Returns the path of ``eval.csv``.

    One process at a time writes a run directory (:func:`macaw.runs.run_lock`): a second
    one is refused, naming the first one's pid."""
    with run_lock(run_dir, "macaw meta-train"):
        return _meta_train_locked(cfg, train_buffers, test_buffers, Path(run_dir), progress,
                                  expected_task_ids, restart_on_config_change,
                                  memorisation_check=memorisation_check, gamma=gamma)


def _meta_train_locked(cfg: MetaTrainConfig, train_buffers: list[Path],
                       test_buffers: list[Path], run_dir: Path, progress: bool,
                       expected_task_ids: tuple[list[int], list[int]] | None,
                       restart_on_config_change: bool, memorisation_check: bool = False,
                       gamma: float | None = None) -> Path:
    """:func:`run_meta_training`, holding the run directory's lock."""
    started = time.perf_counter()
    remove_partial_writes(*(run_dir / name for name in RUN_FILES))
    device = pick_device(cfg.device, "meta-training config")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train, test = ([TaskData.for_run(p, cfg, device) for p in paths]
                   for paths in (train_buffers, test_buffers))
    check_tasks(cfg, train, test, expected_task_ids, memorisation_check, gamma)
    demand = registry.batch_demand(cfg)
    check_windows(cfg, demand, train, test)
    model = build_learner(cfg, train[0].obs_dim, train[0].act_dim, len(train), device)
    optimizers = model.optimizers()

    eval_path = run_dir / "eval.csv"
    # A memorisation check never resumes an ordinary run's checkpoint, nor the reverse (the
    # key is absent from ordinary runs' checkpoints, so theirs compare as before).
    recorded = {"memorisation_check": True} if memorisation_check else {}
    checkpoint = Checkpoint(run_dir / "checkpoint.pt", {**dataclasses.asdict(cfg), **recorded})
    # Every random draw of meta-training is on the CPU (PEARL draws its noise there and moves
    # it), so the NumPy generator and torch's global one make a resume exact on any device.
    generators = ([rng], [None])
    start, rows = 0, []
    last_saved = {"step": None}
    ckpt = checkpoint.read()
    if ckpt is not None:
        ckpt["config"] = saved_config(ckpt.get("config", {}))
        differences = checkpoint.differences(ckpt)
        if differences == [f"steps: {ckpt['config']['steps']!r} -> {cfg.steps!r}"] \
                and cfg.steps >= ckpt["step"]:
            # More (or, above the checkpoint, fewer) steps: the same run, continued.
            log.info("%s: steps %d -> %d; continuing from the checkpoint at step %d", run_dir,
                     ckpt["config"]["steps"], cfg.steps, ckpt["step"])
            differences = []
        evaluation_only = differences and all(
            d.split(":")[0] in EVALUATION_FIELDS for d in differences)
        if evaluation_only:
            # Training never draws from the evaluation's RNG, so re-running it reproduces the
            # same weights at every step: the run is re-evaluated, not refused.
            log.warning("%s: evaluation settings changed (%s); re-evaluating every step by "
                        "re-running the (deterministic) training; the old checkpoint is kept "
                        "as %s", run_dir, "; ".join(differences), checkpoint.set_aside().name)
            ckpt = None
        else:
            ckpt = checkpoint.accept(ckpt, differences,
                                     "delete it (or the run directory) to start afresh",
                                     restart_on_config_change)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        Checkpoint.restore_rngs(ckpt["rng"], *generators)
        start, rows = ckpt["step"], ckpt["eval_rows"]
        last_saved["step"] = start
        log.info("resumed %s from step %d", run_dir, start)
    if demand.tasks > len(train):
        log.warning("%s: %s is %d but the split has %d training tasks: each step uses all %d "
                    "(config.yaml: tasks_per_batch_used)", run_dir, demand.fields[0],
                    demand.tasks, len(train), len(train))
    # Written only once the checkpoint (if any) is known to match: a refused rerun must not
    # leave its config next to another run's checkpoint.
    resolved = {**dataclasses.asdict(cfg), "resolved_algorithm": dataclasses.asdict(model.cfg),
                "train_tasks": [t.task_id for t in train], "test_tasks": [t.task_id for t in test],
                # True: the test tasks are training tasks on purpose (a diagnostic, not a
                # meta-test result).
                "memorisation_check": memorisation_check,
                "buffer_gamma": train[0].buffer.gamma,
                # What a step draws: tasks_per_batch beyond the training tasks is clipped.
                "tasks_per_batch_used": min(demand.tasks, len(train)),
                "device_used": str(device), "provenance": provenance()}
    with atomic_path(run_dir / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(resolved, sort_keys=False))

    # Rows are (step, task_id, episode, return, unadapted_return[, success]); checkpointed,
    # so a resume rewrites them all. train_rows likewise.
    with_success = get_family(test[0].buffer.family).success_flag
    columns = ["step", "task_id", "episode", "return", "unadapted_return"] + (
        ["success"] if with_success else [])
    train_rows = ckpt["train_rows"] if start else []
    pending: list[dict[str, float]] = []

    spent = dict.fromkeys(("training steps", "evaluation", "adaptation statistics",
                           "checkpoints"), 0.0)

    @contextlib.contextmanager
    def timed(part: str):
        since = time.perf_counter()
        try:
            yield
        finally:
            spent[part] += time.perf_counter() - since

    def save(step: int) -> None:
        with timed("checkpoints"):
            _check_finite_parameters(model, run_dir, step, last_saved["step"])
            last_saved["step"] = step
            checkpoint.save({"step": step, "model": model.state_dict(),
                             "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                             "rng": Checkpoint.rng_states(*generators), "eval_rows": rows,
                             "train_rows": train_rows})
            write_csvs()

    def write_csvs() -> None:
        write_csv(eval_path, columns, rows, EVAL_FORMATS)
        write_train_csv(run_dir / "train.csv", train_rows)

    def evaluate(step: int) -> float:
        with timed("evaluation"):
            episodes = evaluate_tasks(model, test, cfg, seed=evaluation_seed(cfg, step))
        if not all(math.isfinite(e.episode_return) for e in episodes):
            raise FloatingPointError(
                f"{run_dir}: non-finite meta-test return at meta-step {step}; the last good "
                f"checkpoint (step {last_saved['step']}) is kept")
        rows.extend((step, e.task_id, e.episode, e.episode_return, e.unadapted_return)
                    + ((float(e.success),) if with_success else ())
                    for e in episodes)
        return float(np.mean([e.episode_return for e in episodes]))

    def log_training(step: int) -> None:
        row = {"step": step, **{k: float(np.mean([p[k] for p in pending])) for k in pending[0]}}
        if hasattr(model, "adaptation_stats"):
            with timed("adaptation statistics"):
                row.update(model.adaptation_stats(train, cfg,
                                                  np.random.default_rng([cfg.seed, step])))
        train_rows.append(row)
        pending.clear()

    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, dynamic_ncols=True,
               desc=f"{cfg.method} {cfg.family} seed{cfg.seed}", unit="step")
    if start == 0 and not rows:
        bar.set_postfix(test_return=f"{evaluate(0):.1f}")
        save(0)
    t0 = time.perf_counter()
    for step in range(start + 1, cfg.steps + 1):
        with timed("training steps"):
            stats = model.train_step(optimizers, train, cfg, rng)
        if not all(math.isfinite(v) for v in stats.values()):
            raise FloatingPointError(
                f"{run_dir}: non-finite loss at meta-step {step} ({stats}); the last good "
                f"checkpoint (step {last_saved['step']}) is kept")
        pending.append(stats)
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            log_training(step)
            mean_return = evaluate(step)
            bar.set_postfix(test_return=f"{mean_return:.1f}")
            log.info("%s step %d: mean test return %.1f (%.1f steps/s), %s", run_dir, step,
                     mean_return, (step - start) / (time.perf_counter() - t0), stats)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save(step)
    bar.close()
    # A finished run started again (e.g. its eval.csv was deleted) rewrites its CSVs from
    # the checkpoint instead of leaving Snakemake a missing output.
    write_csvs()
    total = time.perf_counter() - started
    steps_done = cfg.steps - start
    log.info("%s: %.1f s in this process: %s, %.1f s loading data and the rest", run_dir, total,
             ", ".join(f"{seconds:.1f} s {part}" + (
                 f" ({1000 * seconds / steps_done:.1f} ms/step)"
                 if part == "training steps" and steps_done else "")
                 for part, seconds in spent.items()),
             total - sum(spent.values()))
    return eval_path


def load_finished_run(run_dir: Path, test_buffers: list[Path],
                      ) -> tuple[MetaTrainConfig, MetaLearner, list[TaskData]]:
    """A finished run's config, its meta-trained learner and the test tasks' data (online
    fine-tuning, test-time steps)."""
    run_dir = Path(run_dir)
    resolved = saved_config(yaml.safe_load((run_dir / "config.yaml").read_text()))
    meta = MetaTrainConfig.from_dict({f.name: resolved[f.name]
                                      for f in dataclasses.fields(MetaTrainConfig)})
    device = pick_device(meta.device, "meta-training config")
    ckpt = load_state(run_dir / "checkpoint.pt", map_location="cpu")
    if ckpt["step"] != meta.steps:
        raise ValueError(f"{run_dir}/checkpoint.pt: meta-training stopped at step "
                         f"{ckpt['step']} of {meta.steps}; finish it first")
    tasks = [TaskData.for_run(p, meta, device) for p in test_buffers]
    learner = build_learner(meta, tasks[0].obs_dim, tasks[0].act_dim,
                            len(resolved["train_tasks"]), device)
    learner.load_state_dict(ckpt["model"])
    return meta, learner, tasks
