"""Offline meta-training, then online fine-tuning on out-of-distribution tasks (paper
Appendix C.2, Table 1).

For each test task of a meta-trained run (the ``extrapolation`` split: train v* <= 2, test
v* > 2): the learner adapts on the same offline batch as at meta-test (``eval_batch``
transitions of the task's buffer), then alternates one ``episode_steps`` rollout of its
exploration policy with ``grad_steps_per_rollout`` updates on batches of the task's growing
buffer (the offline batch plus every online transition so far), up to ``env_steps``
additional environment steps. At each of ``report_at`` (0 = the offline-adapted policy) it
records the mean return of ``eval_rollouts`` deterministic rollouts. The learner must provide
``online_agent(context)`` returning an object with ``act``, ``explore`` and ``update``
(:class:`macaw.algos.macaw.MACAWOnlineAgent`, :class:`macaw.algos.pearl.PEARLOnlineAgent`).

Online transitions get Monte-Carlo returns (MACAW's value targets) and bootstrap tails per
finished episode, with the buffers' discount. Output: ``online.csv`` with ``env_steps, task_id, return``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from tqdm.auto import tqdm

from macaw.data import Batch, TaskData, compute_mc_returns
from macaw.data.buffer import episode_tails
from macaw.envs import make_task_env
from macaw.evaluate import adaptation_batch, rollout_return
from macaw.fields import NonNegativeInt, PositiveInt, config_class, parse_config
from macaw.io import atomic_path, write_csv
from macaw.meta_train import load_finished_run
from macaw.runs import Checkpoint

log = logging.getLogger(__name__)


@config_class
class OnlineConfig:
    """Online fine-tuning after offline adaptation (paper C.2)."""

    env_steps: PositiveInt = 200_000
    """Additional environment steps per test task (paper: 200k)."""
    report_at: Annotated[list[NonNegativeInt], Field(min_length=1)] = field(default_factory=lambda: [0, 20_000, 200_000])
    """Env-step counts at which the policy is evaluated (paper: 0, 20k, 200k)."""
    grad_steps_per_rollout: NonNegativeInt = 100
    """Gradient steps after each collected episode (paper: 100)."""
    batch_size: PositiveInt = 256
    """Transitions per gradient step, uniform from the task's growing buffer."""
    eval_rollouts: PositiveInt = 10
    """Deterministic rollouts averaged at each report point (paper: 10)."""
    seed: NonNegativeInt = 0
    """Seeds the adaptation batch, exploration, batches and rollouts."""

    @classmethod
    def from_dict(cls, values: dict) -> "OnlineConfig":
        cfg = parse_config(cls, values, "online fine-tuning config")
        if sorted(cfg.report_at) != cfg.report_at or cfg.report_at[-1] > cfg.env_steps:
            raise ValueError(f"online fine-tuning config: report_at {cfg.report_at} must be "
                             f"increasing and at most env_steps={cfg.env_steps}")
        return cfg


class GrowingBuffer:
    """A task's fine-tuning data: the offline batch, then every online transition."""

    def __init__(self, context: Batch):
        self.fields = [t.detach().cpu().numpy() for t in context]

    def __len__(self) -> int:
        return len(self.fields[0])

    def add_episode(self, obs, actions, rewards, next_obs, terminals, gamma: float) -> None:
        """Append one finished episode with its Monte-Carlo returns and bootstrap tails
        (``s_T`` and ``gamma^(T-t)``, 0 if it ended in a true termination)."""
        timeouts = np.zeros(len(rewards), bool)
        timeouts[-1] = not terminals[-1]
        returns = compute_mc_returns(np.asarray(rewards), np.asarray(terminals), timeouts, gamma)
        tail_index, discounts = episode_tails(np.asarray(terminals), timeouts, gamma)
        tail_obs = np.asarray(next_obs)[tail_index]
        new = (obs, actions, rewards, next_obs, terminals, returns, tail_obs, discounts)
        self.fields = [np.concatenate([old, np.asarray(n, dtype=old.dtype)])
                       for old, n in zip(self.fields, new)]

    def sample(self, batch_size: int, rng: np.random.Generator, device) -> Batch:
        idx = rng.integers(len(self), size=batch_size)
        return Batch(*(torch.as_tensor(f[idx], device=device) for f in self.fields))


def collect_episode(env, agent, seed: int, device) -> tuple[list, float]:
    """One episode of ``agent.explore``; the transitions and its return."""
    obs, _ = env.reset(seed=seed)
    steps, total, done = [], 0.0, False
    while not done:
        action = agent.explore(torch.as_tensor(obs, dtype=torch.float32, device=device))
        action = action.cpu().numpy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        steps.append((obs, action, reward, next_obs, float(terminated)))
        obs, total, done = next_obs, total + float(reward), terminated or truncated
    return steps, total


def finetune_task(learner, task: TaskData, context: Batch, cfg: OnlineConfig, gamma: float,
                  rng: np.random.Generator) -> list[tuple[int, float]]:
    """(env_steps, mean deterministic return) at every report point for one task."""
    device = task.obs.device
    agent = learner.online_agent(context)
    buffer = GrowingBuffer(context)
    env = make_task_env(task.buffer.family, task.task_id)
    rows, env_steps = [], 0
    report = list(cfg.report_at)
    while report:
        if env_steps >= report[0]:
            returns = [rollout_return(task.buffer.family, task.task_id, agent.act,
                                      seed=int(rng.integers(2**31)), device=device)
                       for _ in range(cfg.eval_rollouts)]
            mean = float(np.mean(returns))
            if not np.isfinite(mean):
                raise FloatingPointError(
                    f"online fine-tuning of {task.buffer.family} task {task.task_id}: non-finite "
                    f"return after {env_steps} env steps (the fine-tuned policy diverged)")
            rows.append((report.pop(0), mean))
            continue
        steps, _ = collect_episode(env, agent, int(rng.integers(2**31)), device)
        buffer.add_episode(*(np.array(x) for x in zip(*steps)), gamma=gamma)
        env_steps += len(steps)
        for _ in range(cfg.grad_steps_per_rollout):
            agent.update(buffer.sample(cfg.batch_size, rng, device))
    env.close()
    return rows


def run_online_finetuning(run_dir: Path, test_buffers: list[Path], cfg: OnlineConfig,
                          out_csv: Path, progress: bool = True,
                          restart_on_config_change: bool = False) -> Path:
    """Online fine-tuning of the meta-trained learner in ``run_dir`` on every test task.

    After each task the rows so far and the random-generator states go to a checkpoint
    beside ``out_csv`` (:meth:`macaw.runs.Checkpoint.beside`, tied to this config, the
    meta-trained run's config and the test buffers); a killed run resumes at the first
    unfinished task and writes the same file as an uninterrupted one (each task's fine-tuning
    starts from the unchanged meta-trained learner, so the generators are all it carries
    over). The checkpoint is deleted once ``out_csv`` is written. One written under another
    config is refused, or with ``restart_on_config_change`` kept aside while the run starts
    afresh."""
    meta, learner, tasks = load_finished_run(run_dir, test_buffers)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    contexts = adaptation_batch(tasks, meta.eval_batch, rng)
    checkpoint = Checkpoint(Checkpoint.beside(out_csv), {
        "online": dataclasses.asdict(cfg), "meta_training": dataclasses.asdict(meta),
        "test_buffers": [str(p) for p in test_buffers]})
    # Exploration noise comes from torch's global generator, everything else from rng.
    generators = ([rng], [None])
    state = checkpoint.load("delete it to start afresh", restart_on_config_change)
    done, rows = 0, []
    if state is not None:
        done, rows = state["tasks_done"], [tuple(r) for r in state["rows"]]
        Checkpoint.restore_rngs(state["rng"], *generators)
        log.info("online fine-tuning %s: resumed from %s after %d of %d tasks", meta.method,
                 checkpoint.path, done, len(tasks))
    for k in tqdm(range(done, len(tasks)), desc=f"online fine-tuning {meta.method}",
                  initial=done, total=len(tasks), disable=not progress):
        task, context = tasks[k], Batch(*(f[k] for f in contexts))
        for env_steps, ret in finetune_task(learner, task, context, cfg, task.buffer.gamma, rng):
            rows.append((env_steps, task.task_id, ret))
            log.info("%s task %d: %d env steps, return %.1f", meta.method, task.task_id,
                     env_steps, ret)
        checkpoint.save({"tasks_done": k + 1, "rows": rows,
                         "rng": Checkpoint.rng_states(*generators)})
    write_csv(out_csv, ["env_steps", "task_id", "return"], rows, {"return": ".6f"})
    checkpoint.path.unlink(missing_ok=True)
    return Path(out_csv)


__all__ = ["OnlineConfig", "GrowingBuffer", "finetune_task", "run_online_finetuning",
           "online_table"]


def online_table(runs: dict[str, list[Path]], out_csv: Path, out_md: Path) -> "pd.DataFrame":
    """Table 1: per method and report point, the mean return over test tasks (each task's
    return averaged over seeds first) and the improvement over the offline-adapted policy
    (env step 0), each with its standard error over test tasks."""
    import pandas as pd

    rows = []
    for method, paths in runs.items():
        df = pd.concat([pd.read_csv(p) for p in paths])
        per_task = df.groupby(["env_steps", "task_id"])["return"].mean().unstack("task_id")
        gain = per_task - per_task.loc[per_task.index.min()]
        for steps in per_task.index:
            n = per_task.shape[1]
            rows.append({"method": method, "env_steps": int(steps),
                         "reward": per_task.loc[steps].mean(),
                         "reward_se": per_task.loc[steps].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                         "improvement": gain.loc[steps].mean(),
                         "improvement_se": gain.loc[steps].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan,
                         "test_tasks": n, "seeds": len(paths)})
    table = pd.DataFrame(rows)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.3f")
    lines = ["| method | env steps | reward (s.e.) | improvement (s.e.) |", "|---|---:|---:|---:|"]
    for r in table.itertuples():
        gain = "—" if r.env_steps == table[table.method == r.method].env_steps.min() \
            else f"{r.improvement:.1f} ({r.improvement_se:.1f})"
        lines.append(f"| {r.method} | {r.env_steps} | {r.reward:.1f} ({r.reward_se:.1f}) | {gain} |")
    note = (f"\nMean over {table.test_tasks.max()} test tasks (each averaged over seeds) of the "
            "mean of the deterministic rollouts at each point; standard error over test tasks "
            "in brackets (paper Table 1).\n")
    with atomic_path(out_md) as tmp:
        tmp.write_text("\n".join(lines) + "\n" + note)
    return table
