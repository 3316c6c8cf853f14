#!/usr/bin/env python
"""Behaviour policies: our batched ensemble SAC vs Stable-Baselines3 SAC, task after task.

Two measurements, both on cheetah-vel, both SAC, same process, ``torch.set_num_threads``:

1. **Throughput.** ``macaw.behaviour.train_behaviour`` trains T tasks at once (one batched
   ensemble, lock-step environments). Stable-Baselines3 trains one task at a time; we time
   ``--sb3-tasks`` of them and extrapolate the sequential time for T tasks as
   ``mean seconds per task x T``. Same width ([128, 128] actor and critics), batch, buffer
   (all transitions), learning_starts, train_freq 1, gradient_steps 1, tau, gamma, autotuned
   entropy. SB3 has one learning rate for actor, critics and temperature: 3e-4; ours keeps
   its defaults (actor/temperature 3e-4, critic 1e-3). Throughput is environment steps per
   second summed over tasks; "total" includes building envs/models and writing outputs,
   "learning phase" counts only the steps after learning_starts.
2. **Equal learning.** A few tasks trained long enough that returns move; the mean return of
   the last ``--last-episodes`` episodes of every task, ours (the lifetime file's
   ``episode_returns``) vs SB3 (a ``Monitor`` wrapper's episode rewards), compared across
   tasks (means, standard errors, |diff| <= 2 x combined s.e.) and paired per task.

Progress goes to stderr; the report to stdout (``--json``: one JSON line).
Run from the repository root with the project's venv, e.g.::

    python benchmarks/behaviour.py            # full run, ~10 min on 2 idle cores
    python benchmarks/behaviour.py --quick    # plumbing check, ~15 s
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

FAMILY = "cheetah-vel"
WIDTH, N_HIDDEN = 128, 2


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- ours ---------

class _Timers:
    """Wall-clock seconds and call counts per section, plus a few timestamps."""

    def __init__(self):
        self.sec: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.first_step = self.last_step_end = self.first_update = None

    def add(self, name: str, seconds: float) -> None:
        self.sec[name] = self.sec.get(name, 0.0) + seconds
        self.calls[name] = self.calls.get(name, 0) + 1


@contextlib.contextmanager
def _instrumented_trainer(timers: _Timers):
    """Time the sections of ``train_behaviour``'s loop by swapping in timed subclasses of
    its env set, replay and agents (in the trainer module's namespace only; restored after)."""
    from macaw.behaviour import trainer

    saved = trainer.TaskEnvs, trainer.LifetimeReplay, trainer.AGENTS

    class TimedEnvs(saved[0]):
        def step(self, actions):
            t = time.perf_counter()
            if timers.first_step is None:
                timers.first_step = t
            out = super().step(actions)
            timers.last_step_end = time.perf_counter()
            timers.add("env_step", timers.last_step_end - t)
            return out

    class TimedReplay(saved[1]):
        def add(self, **step):
            t = time.perf_counter()
            super().add(**step)
            timers.add("replay_add", time.perf_counter() - t)

        def sample(self, batch_size, generator):
            t = time.perf_counter()
            out = super().sample(batch_size, generator)
            timers.add("replay_sample", time.perf_counter() - t)
            return out

    def timed(cls):
        class Timed(cls):
            def act(self, obs, deterministic=False):
                t = time.perf_counter()
                out = super().act(obs, deterministic)
                timers.add("agent_act", time.perf_counter() - t)
                return out

            def update(self, batch):
                t = time.perf_counter()
                if timers.first_update is None:
                    timers.first_update = t
                out = super().update(batch)
                timers.add("agent_update", time.perf_counter() - t)
                return out
        Timed.__name__ = cls.__name__
        return Timed

    trainer.TaskEnvs, trainer.LifetimeReplay = TimedEnvs, TimedReplay
    trainer.AGENTS = {k: timed(v) for k, v in saved[2].items()}
    try:
        yield
    finally:
        trainer.TaskEnvs, trainer.LifetimeReplay, trainer.AGENTS = saved


def run_ours(tasks: list[int], steps: int, learning_starts: int, seed: int,
             workdir: Path, critic_lr: float = 1e-3) -> dict:
    """Train ``tasks`` together with ``train_behaviour`` (SAC); time it and read returns."""
    from macaw.behaviour.trainer import BehaviourConfig, train_behaviour

    cfg = BehaviourConfig(family=FAMILY, tasks=list(tasks), algorithm="sac", steps=steps,
                          learning_starts=learning_starts, width=WIDTH, n_hidden=N_HIDDEN,
                          batch_size=128, policy_lr=3e-4, critic_lr=critic_lr, seed=seed,
                          checkpoint_every=0, log_every=steps)
    lifetime, policy = workdir / f"ours_T{len(tasks)}.h5", workdir / f"ours_T{len(tasks)}.pt"
    timers = _Timers()
    t0 = time.perf_counter()
    with _instrumented_trainer(timers):
        train_behaviour(cfg, lifetime, policy, checkpoint_path=workdir / "resume.pt",
                        progress=False)
    total = time.perf_counter() - t0
    with h5py.File(lifetime) as f:
        returns = {t: f[f"task{t:02d}/episode_returns"][()].tolist() for t in tasks}
    n = len(tasks)
    learn_steps = steps - learning_starts
    learn_s = timers.last_step_end - timers.first_update
    loop_s = timers.last_step_end - timers.first_step
    return {
        "tasks": n, "steps_per_task": steps, "total_s": total, "loop_s": loop_s,
        "learning_phase_s": learn_s,
        "steps_per_s_total": n * steps / total,
        "steps_per_s_learning": n * learn_steps / learn_s,
        "breakdown_s": {k: round(v, 3) for k, v in sorted(timers.sec.items())},
        "breakdown_ms_per_call": {k: round(1e3 * v / timers.calls[k], 3)
                                  for k, v in sorted(timers.sec.items())},
        "episode_returns": returns,
    }


# --------------------------------------------------------------------------- SB3 ----------

def run_sb3_task(task: int, steps: int, learning_starts: int, seed: int) -> dict:
    """One Stable-Baselines3 SAC on one cheetah-vel task, matched to our defaults."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor

    from macaw.envs import make_task_env

    stamps: dict[str, float] = {}

    class Stamp(BaseCallback):
        def _on_step(self) -> bool:
            # SB3 trains once num_timesteps > learning_starts (after the step's callback).
            if self.num_timesteps == learning_starts + 1:
                stamps["learning"] = time.perf_counter()
            return True

    t0 = time.perf_counter()
    env = Monitor(make_task_env(FAMILY, task))
    model = SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=steps,
                learning_starts=learning_starts, batch_size=128, tau=0.005, gamma=0.99,
                train_freq=1, gradient_steps=1, ent_coef="auto", target_update_interval=1,
                policy_kwargs=dict(net_arch=[WIDTH] * N_HIDDEN), device="cpu", seed=seed + task,
                verbose=0)
    t1 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=Stamp(), progress_bar=False)
    t2 = time.perf_counter()
    returns = [float(r) for r in env.get_episode_rewards()]
    env.close()
    return {"task": task, "total_s": t2 - t0, "learn_s": t2 - t1,
            "learning_phase_s": t2 - stamps["learning"], "episode_returns": returns}


# --------------------------------------------------------------------------- stats --------

def _mean_se(x) -> tuple[float, float]:
    x = np.asarray(x, dtype=float)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")
    return float(x.mean()), se


def compare_learning(ours: dict, sb3: dict[int, list[float]], tasks: list[int],
                     last: int) -> dict:
    per_task = []
    for t in tasks:
        a, b = ours["episode_returns"][t], sb3[t]
        if len(a) != len(b):
            raise RuntimeError(f"task {t}: ours has {len(a)} episodes, SB3 {len(b)}")
        ma, sa = _mean_se(a[-last:])
        mb, sb = _mean_se(b[-last:])
        per_task.append({"task": t, "episodes": len(a), "ours": ma, "ours_se": sa,
                         "sb3": mb, "sb3_se": sb, "diff": ma - mb})
    mo, so = _mean_se([p["ours"] for p in per_task])
    ms, ss = _mean_se([p["sb3"] for p in per_task])
    comb = math.hypot(so, ss)
    md, sd = _mean_se([p["diff"] for p in per_task])
    return {
        "last_episodes": last, "per_task": per_task,
        "ours_mean": mo, "ours_se": so, "sb3_mean": ms, "sb3_se": ss,
        "diff": mo - ms, "combined_se": comb,
        "within_noise": bool(abs(mo - ms) <= 2 * comb),
        "paired_diff_mean": md, "paired_diff_se": sd,
        "paired_within_noise": bool(abs(md) <= 2 * sd),
    }


# --------------------------------------------------------------------------- main ---------

def machine_info() -> dict:
    model = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import stable_baselines3
    return {"cpu": model, "torch": torch.__version__, "sb3": stable_baselines3.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("throughput")
    g.add_argument("--tasks", type=int, default=40, help="T: cheetah-vel tasks 0..T-1 for ours")
    g.add_argument("--steps", type=int, default=3000, help="env steps per task")
    g.add_argument("--learning-starts", type=int, default=1000)
    g.add_argument("--sb3-tasks", type=int, default=3,
                   help="SB3 tasks timed one after another (extrapolated to T)")
    g = p.add_argument_group("equal learning")
    g.add_argument("--learn-tasks", type=int, nargs="+", default=[0, 13, 26, 39])
    g.add_argument("--learn-steps", type=int, default=15000, help="env steps per task")
    g.add_argument("--learn-learning-starts", type=int, default=2000)
    g.add_argument("--ours-lr-critic", type=float, default=1e-3,
                   help="our critic learning rate (project default 1e-3; 3e-4 matches SB3)")
    g.add_argument("--last-episodes", type=int, default=10,
                   help="episodes at the end of each lifetime whose returns are averaged")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-learning", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes to check the plumbing (~15 s idle); numbers meaningless")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.steps, args.learning_starts, args.sb3_tasks = 4, 600, 300, 1
        args.learn_tasks, args.learn_steps, args.learn_learning_starts = [0, 39], 1000, 400
        args.last_episodes = 2
    if args.sb3_tasks > args.tasks:
        p.error("--sb3-tasks must not exceed --tasks")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {"command": " ".join(["python", *sys.argv]), "machine": machine_info(),
               "args": {k: v for k, v in vars(args).items() if k != "json"},
               "sb3_learning_rate": 3e-4,
               "ours_learning_rates": {"actor": 3e-4, "critic": 1e-3, "alpha": 3e-4},
               "ours_learning_rates_learning": {"actor": 3e-4, "critic": args.ours_lr_critic,
                                                "alpha": 3e-4}}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="macaw-bench-") as tmp:
        tmp = Path(tmp)
        if not args.skip_throughput:
            T = args.tasks
            log(f"throughput: ours, {T} tasks x {args.steps} steps (learning_starts "
                f"{args.learning_starts})")
            ours = run_ours(list(range(T)), args.steps, args.learning_starts, args.seed, tmp)
            ours.pop("episode_returns")
            log(f"  ours: {ours['total_s']:.1f} s, {ours['steps_per_s_total']:.0f} steps/s")
            sb3_runs = []
            for task in range(args.sb3_tasks):
                r = run_sb3_task(task, args.steps, args.learning_starts, args.seed)
                r.pop("episode_returns")
                sb3_runs.append(r)
                log(f"  sb3 task {task}: {r['total_s']:.1f} s")
            per_task = float(np.mean([r["total_s"] for r in sb3_runs]))
            per_task_learn = float(np.mean([r["learning_phase_s"] for r in sb3_runs]))
            learn_steps = args.steps - args.learning_starts
            sb3 = {"tasks_timed": args.sb3_tasks, "runs": sb3_runs,
                   "s_per_task": per_task, "s_per_task_learning_phase": per_task_learn,
                   "sequential_s_for_T": per_task * T,
                   "steps_per_s_total": args.steps / per_task,
                   "steps_per_s_learning": learn_steps / per_task_learn}
            results["throughput"] = {
                "tasks": T, "steps_per_task": args.steps,
                "learning_starts": args.learning_starts, "ours": ours, "sb3": sb3,
                "ratio_total": ours["steps_per_s_total"] / sb3["steps_per_s_total"],
                "ratio_learning_phase": ours["steps_per_s_learning"]
                / sb3["steps_per_s_learning"],
            }
        if not args.skip_learning:
            tasks = list(args.learn_tasks)
            log(f"learning: ours, tasks {tasks} x {args.learn_steps} steps "
                f"(learning_starts {args.learn_learning_starts})")
            ours = run_ours(tasks, args.learn_steps, args.learn_learning_starts, args.seed, tmp,
                            critic_lr=args.ours_lr_critic)
            log(f"  ours: {ours['total_s']:.1f} s")
            sb3_ret, sb3_s = {}, []
            for task in tasks:
                r = run_sb3_task(task, args.learn_steps, args.learn_learning_starts, args.seed)
                sb3_ret[task] = r["episode_returns"]
                sb3_s.append(r["total_s"])
                log(f"  sb3 task {task}: {r['total_s']:.1f} s")
            cmp = compare_learning(ours, sb3_ret, tasks, args.last_episodes)
            cmp.update({"tasks": tasks, "steps_per_task": args.learn_steps,
                        "learning_starts": args.learn_learning_starts,
                        "ours_total_s": ours["total_s"], "sb3_total_s": float(sum(sb3_s)),
                        "ratio_total": float(sum(sb3_s)) / ours["total_s"]})
            results["learning"] = cmp
    results["wall_s"] = time.perf_counter() - t_start
    if args.json:
        print(json.dumps(results))
    else:
        print_report(results)
    return results


def print_report(r: dict) -> None:
    m = r["machine"]
    print(f"machine: {m['cpu']}, torch {m['torch']} ({m['torch_threads']} threads), "
          f"SB3 {m['sb3']}, {m['date']}")
    lr = r.get("ours_learning_rates_learning", r["ours_learning_rates"])
    print(f"learning rates: SB3 {r['sb3_learning_rate']:g} (actor, critics, alpha); "
          f"ours actor/alpha 3e-4, critic 1e-3 (equal-learning run: critic {lr['critic']:g})")
    if "throughput" in r:
        t = r["throughput"]
        o, s = t["ours"], t["sb3"]
        print(f"\nthroughput, cheetah-vel SAC, T={t['tasks']} tasks x {t['steps_per_task']} "
              f"steps (learning_starts {t['learning_starts']}):")
        print(f"  ours (ensemble, T at once): {o['total_s']:8.1f} s   "
              f"{o['steps_per_s_total']:7.0f} steps/s total, "
              f"{o['steps_per_s_learning']:7.0f} steps/s learning phase")
        print(f"  SB3 (task after task):      {s['sequential_s_for_T']:8.1f} s   "
              f"{s['steps_per_s_total']:7.0f} steps/s total, "
              f"{s['steps_per_s_learning']:7.0f} steps/s learning phase")
        print(f"    = {s['s_per_task']:.1f} s per task (mean of {s['tasks_timed']} tasks "
              f"timed sequentially) x {t['tasks']} tasks")
        print(f"  ratio ours/SB3: {t['ratio_total']:.2f}x total, "
              f"{t['ratio_learning_phase']:.2f}x learning phase")
        print("  ours, where the time goes (s): " + ", ".join(
            f"{k} {v:.1f}" for k, v in o["breakdown_s"].items()))
    if "learning" in r:
        c = r["learning"]
        print(f"\nequal learning, tasks {c['tasks']} x {c['steps_per_task']} steps "
              f"(learning_starts {c['learning_starts']}), mean return of the last "
              f"{c['last_episodes']} episodes:")
        print("  task  episodes      ours (s.e.)         SB3 (s.e.)      diff")
        for p in c["per_task"]:
            print(f"  {p['task']:4d}  {p['episodes']:8d}  {p['ours']:8.1f} ({p['ours_se']:5.1f})"
                  f"  {p['sb3']:8.1f} ({p['sb3_se']:5.1f})  {p['diff']:8.1f}")
        print(f"  mean over tasks: ours {c['ours_mean']:.1f} +- {c['ours_se']:.1f}, "
              f"SB3 {c['sb3_mean']:.1f} +- {c['sb3_se']:.1f} (s.e. across tasks)")
        print(f"  diff {c['diff']:.1f}, 2 x combined s.e. {2 * c['combined_se']:.1f}: "
              f"{'within' if c['within_noise'] else 'NOT within'} noise; paired diff "
              f"{c['paired_diff_mean']:.1f} +- {c['paired_diff_se']:.1f}: "
              f"{'within' if c['paired_within_noise'] else 'NOT within'} noise")
        print(f"  wall: ours {c['ours_total_s']:.1f} s, SB3 {c['sb3_total_s']:.1f} s "
              f"({c['ratio_total']:.2f}x)")
    print(f"\nbenchmark wall time: {r['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
