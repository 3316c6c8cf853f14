"""Train one behaviour policy per task, all tasks of a family at once, keeping every transition.

The paper's offline data is the *lifetime* replay buffer of a policy trained from scratch on
each task (Section 5, Appendix C; SAC, TD3 for cheetah-vel). :func:`train_behaviour` runs the
tasks of a family in lock-step: one environment per task, one batched ensemble agent
(:mod:`macaw.behaviour.agents`), one gradient step per environment step (UTD 1; in an
optional late phase, ``late_phase_from``, one every ``late_update_every`` steps). Every
transition is kept; at the end each task's unfinished last episode is dropped, so each
task's lifetime ends on an episode boundary (see :func:`macaw.data.compute_mc_returns`).
For families with a success flag (Meta-World, ``info["success"]``) an episode counts as a
success if any of its steps does; the lifetime file keeps one flag per episode beside its
return (``episode_successes``) for the Fig. 9 curves.

Runs are resumable: every ``checkpoint_every`` steps the networks, optimisers, environment
simulator states (``mujoco.mj_getState``, or the env's own ``get_checkpoint_state`` where it
keeps more than MuJoCo's state, as Meta-World does) and every RNG are saved atomically
(:func:`macaw.runs.save_state`, loadable with ``weights_only=True``), and the replay rows since
the previous checkpoint are appended as one segment (:class:`macaw.runs.SegmentStore`); a
killed run started again with the same arguments continues from there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import ClassVar, Literal

import gymnasium as gym
import h5py
import mujoco
import numpy as np
import torch
from tqdm.auto import tqdm

from macaw.behaviour.agents import AGENTS, TransitionBatch
from macaw.envs import get_family, make_task_env
from macaw.fields import (NonNegativeInt, PositiveFloat, PositiveInt, UnitFraction,
                          config_class, parse_config)
from macaw.io import atomic_hdf5, remove_partial_writes
from macaw.provenance import provenance
from macaw.runs import (ENV_RESET, Checkpoint, SegmentStore, non_finite, pick_device,
                        save_state, stream_generators, stream_seed)

log = logging.getLogger(__name__)

LIFETIME_FORMAT = "macaw-lifetime-2"
"""2: every dataset carries a Fletcher-32 checksum, as the buffers do (1: none; still read)."""


@config_class
class BehaviourConfig:
    """How the behaviour policies of one task family are trained."""

    family: str
    """Task family name, e.g. ``cheetah-vel`` (see :data:`macaw.envs.FAMILIES`)."""
    tasks: list[NonNegativeInt]
    """Task ids trained together as one ensemble."""
    algorithm: Literal["sac", "td3"] = "sac"
    """``sac`` or ``td3`` (the paper uses TD3 for cheetah-vel, SAC elsewhere)."""
    steps: PositiveInt = 30_000
    """Environment steps per task (the length of each task's lifetime buffer)."""
    learning_starts: NonNegativeInt = 2_000
    """Uniform-random actions for this many steps before learning starts."""
    width: PositiveInt = 128
    """Hidden units per layer of actor and critics."""
    n_hidden: PositiveInt = 2
    """Hidden layers of actor and critics."""
    batch_size: PositiveInt = 128
    """Transitions per task per gradient step."""
    policy_lr: PositiveFloat = 3e-4
    """Adam rate of the actor (and of the SAC temperature)."""
    critic_lr: PositiveFloat = 1e-3
    """Adam rate of the critics."""
    gamma: UnitFraction = 0.99
    """Discount factor."""
    tau: UnitFraction = 0.005
    """Polyak rate of the target networks."""
    seed: NonNegativeInt = 0
    """Seeds every task's random streams and environment."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the ensemble's networks train: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
    The replay and the random streams stay on the CPU, so the noise is the same on both."""
    checkpoint_every: NonNegativeInt = 5_000
    """Save a resumable checkpoint every this many steps (0: never)."""
    log_every: PositiveInt = 1_000
    """Log per-task returns every this many steps."""
    late_phase_from: NonNegativeInt | None = None
    """Step at which the late phase starts (None: no late phase): the policy keeps acting with
    its exploration noise, but takes one gradient step every ``late_update_every``
    environment steps instead of every step, so that a lifetime is mostly near-converged
    behaviour, as the authors' 2.5M-step lifetimes, at a fraction of their cost."""
    late_update_every: PositiveInt = 1
    """Environment steps per gradient step in the late phase (1: as before it)."""

    RENAMED: ClassVar[dict[str, str]] = {
        "total_steps": "steps", "lr_actor": "policy_lr", "lr_critic": "critic_lr",
        "hidden": "width and n_hidden; hidden: [128, 128] is width: 128, n_hidden: 2"}
    """Old field name -> its new name (:func:`macaw.fields.parse_config` names it)."""

    @classmethod
    def from_dict(cls, family: str, values: dict) -> "BehaviourConfig":
        """Checked: every field's name, type and range (its annotation), and the fields
        that constrain each other (:meth:`check_together`)."""
        cfg = parse_config(cls, values, f"behaviour config of {family!r}",
                           supplied={"family": family})
        cfg.check_together()
        return cfg

    def check_together(self) -> None:
        """The constraints between fields, which the schema cannot state: the first update
        (at step ``learning_starts``) samples ``batch_size`` rows of the replay, so it must
        hold them. The workflow checks every family's config with it before any job."""
        if self.batch_size > self.learning_starts:
            raise ValueError(f"behaviour config of {self.family!r}: batch_size "
                             f"({self.batch_size}) must not exceed learning_starts "
                             f"({self.learning_starts})")
        if self.late_phase_from is not None and not (
                self.learning_starts <= self.late_phase_from < self.steps):
            raise ValueError(f"behaviour config of {self.family!r}: late_phase_from "
                             f"({self.late_phase_from}) must lie in [learning_starts, steps) = "
                             f"[{self.learning_starts}, {self.steps})")

    def updates_at(self, step: int) -> bool:
        """Whether environment step ``step`` (0-based) is followed by a gradient step."""
        if step + 1 < self.learning_starts:
            return False
        late = self.late_phase_from
        return late is None or step < late or (step - late) % self.late_update_every == 0


class TaskEnvs:
    """One environment per task, stepped together; resets finished episodes itself."""

    def __init__(self, family: str, tasks: list[int], seed: int):
        self.envs = [make_task_env(family, t) for t in tasks]
        self.obs = np.stack([env.reset(seed=stream_seed(seed, t, ENV_RESET))[0]
                             for env, t in zip(self.envs, tasks)]).astype(np.float32)
        self.episode_return = np.zeros(len(tasks))
        self.episode_length = np.zeros(len(tasks), dtype=np.int64)
        self.episode_success = np.zeros(len(tasks), dtype=bool)

    def step(self, actions: np.ndarray):
        """Step every env; returns (obs, next_obs, rewards, terminals, timeouts, finished)
        where ``finished`` lists ``(task_index, episode_return, episode_length, success)``;
        ``success``: some step of the episode had ``info["success"]`` (False without one)."""
        n = len(self.envs)
        next_obs = np.empty_like(self.obs)
        rewards = np.empty(n, dtype=np.float32)
        terminals = np.zeros(n, dtype=bool)
        timeouts = np.zeros(n, dtype=bool)
        finished = []
        obs = self.obs.copy()
        for i, env in enumerate(self.envs):
            o, r, term, trunc, info = env.step(actions[i])
            next_obs[i], rewards[i] = o, r
            terminals[i], timeouts[i] = term, trunc and not term
            self.episode_return[i] += r
            self.episode_length[i] += 1
            self.episode_success[i] |= bool(info.get("success", False))
            if term or trunc:
                finished.append((i, self.episode_return[i], int(self.episode_length[i]),
                                 bool(self.episode_success[i])))
                self.episode_return[i], self.episode_length[i] = 0.0, 0
                self.episode_success[i] = False
                o, _ = env.reset()
            self.obs[i] = o
        return obs, next_obs, rewards, terminals, timeouts, finished

    def get_state(self) -> list[dict]:
        """Exact simulator, time-limit and RNG state of every env (for checkpoints)."""
        states = []
        for env in self.envs:
            u = env.unwrapped
            if hasattr(u, "get_checkpoint_state"):  # state beyond MuJoCo's (Meta-World)
                states.append({"env": u.get_checkpoint_state(),
                               "elapsed": _time_limit(env)._elapsed_steps})
                continue
            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            sim = np.empty(mujoco.mj_stateSize(u.model, spec))
            mujoco.mj_getState(u.model, u.data, sim, spec)
            states.append({"sim": sim, "elapsed": _time_limit(env)._elapsed_steps,
                           "rng": u.np_random.bit_generator.state})
        return states

    def set_state(self, states: list[dict], obs: np.ndarray, ep_return, ep_length,
                  ep_success=None) -> None:
        for env, s in zip(self.envs, states):
            u = env.unwrapped
            if "env" in s:
                u.set_checkpoint_state(s["env"])
                _time_limit(env)._elapsed_steps = s["elapsed"]
                continue
            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            mujoco.mj_setState(u.model, u.data, s["sim"], spec)
            mujoco.mj_forward(u.model, u.data)
            # mj_forward re-solves active contacts and overwrites the solver's warm start
            # (by ~1e-13): put the saved state back so the next step is bit-identical.
            mujoco.mj_setState(u.model, u.data, s["sim"], spec)
            _time_limit(env)._elapsed_steps = s["elapsed"]
            u.np_random.bit_generator.state = s["rng"]
        self.obs[:] = obs
        self.episode_return[:] = ep_return
        self.episode_length[:] = ep_length
        self.episode_success[:] = False if ep_success is None else ep_success


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit:
    while not isinstance(env, gym.wrappers.TimeLimit):
        env = env.env
    return env


class LifetimeReplay:
    """Every transition of every task, in order: tensors of shape ``(T, steps, ...)``."""

    KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")

    def __init__(self, n_tasks: int, capacity: int, obs_dim: int, act_dim: int):
        shapes = {"observations": (obs_dim,), "actions": (act_dim,), "rewards": (),
                  "next_observations": (obs_dim,), "terminals": (), "timeouts": ()}
        self.data = {k: torch.zeros((n_tasks, capacity, *shapes[k]),
                                    dtype=torch.bool if k in ("terminals", "timeouts")
                                    else torch.float32) for k in self.KEYS}
        self.size = 0
        self.task_index = torch.arange(n_tasks).unsqueeze(1)

    def add(self, **step: np.ndarray) -> None:
        for k in self.KEYS:
            self.data[k][:, self.size] = torch.from_numpy(np.asarray(step[k]))
        self.size += 1

    def sample(self, batch_size: int, generators: list[torch.Generator]) -> TransitionBatch:
        """``batch_size`` uniform rows of every task, task ``t``'s from ``generators[t]``."""
        idx = torch.stack([torch.randint(0, self.size, (batch_size,), generator=g)
                           for g in generators])
        d, t = self.data, self.task_index
        return TransitionBatch(d["observations"][t, idx], d["actions"][t, idx],
                               d["rewards"][t, idx], d["next_observations"][t, idx],
                               d["terminals"][t, idx].float())


def train_behaviour(cfg: BehaviourConfig, lifetime_path: Path, policy_path: Path,
                    checkpoint_path: Path | None = None, progress: bool = True,
                    restart_on_config_change: bool = False) -> Path:
    """Train ``cfg.tasks`` of ``cfg.family`` together; write their lifetimes to ``lifetime_path``.

    ``lifetime_path`` (HDF5) gets one group per task (``task07`` ...) with the raw transition
    arrays and the episode returns, cut at the last finished episode; ``policy_path`` gets
    the final agent weights. Both are written atomically. ``checkpoint_path`` (default:
    beside ``lifetime_path``) holds the resumable state and is removed on success. A
    checkpoint of another config is refused, naming the changed fields; with
    ``restart_on_config_change`` (what the workflow's rule passes) it is kept aside as
    ``resume.stale.pt`` with its replay as ``resume.stale.replay/``, and the run starts afresh.
    """
    family = get_family(cfg.family)
    if cfg.algorithm not in AGENTS:
        raise ValueError(f"behaviour config of {cfg.family!r}: algorithm {cfg.algorithm!r} "
                         f"unknown; expected one of {sorted(AGENTS)}")
    cfg.check_together()
    lifetime_path, policy_path = Path(lifetime_path), Path(policy_path)
    checkpoint_path = Path(checkpoint_path or lifetime_path.with_name("resume.pt"))
    lifetime_path.parent.mkdir(parents=True, exist_ok=True)
    remove_partial_writes(lifetime_path, policy_path)   # of a run killed while writing them

    # One torch and one NumPy stream per task (SeedSequence of the seed and the task id), for
    # its initial weights, noise, random actions and replay batches: a task's lifetime is
    # bit-identical whichever tasks share its ensemble (workflow: families.<f>.tasks_per_job).
    streams = [stream_generators(cfg.seed, task) for task in cfg.tasks]
    torch_gens = [s[0] for s in streams]
    numpy_gens = [s[1] for s in streams]
    envs = TaskEnvs(cfg.family, cfg.tasks, cfg.seed)
    obs_dim = envs.envs[0].observation_space.shape[0]
    act_dim = envs.envs[0].action_space.shape[0]
    device = pick_device(cfg.device, f"behaviour config of {cfg.family!r}")
    agent = AGENTS[cfg.algorithm](len(cfg.tasks), obs_dim, act_dim, [cfg.width] * cfg.n_hidden,
                                  policy_lr=cfg.policy_lr, critic_lr=cfg.critic_lr,
                                  gamma=cfg.gamma, tau=cfg.tau, generators=torch_gens,
                                  device=device)
    replay = LifetimeReplay(len(cfg.tasks), cfg.steps, obs_dim, act_dim)
    # (return, end step, success) of every finished episode of every task
    episodes: list[list[tuple[float, int, bool]]] = [[] for _ in cfg.tasks]

    start = 0
    segments = SegmentStore(_replay_dir(checkpoint_path), axis=1)
    checkpoint = Checkpoint(checkpoint_path, dataclasses.asdict(cfg))
    ckpt = checkpoint.read()
    if ckpt is not None:
        differences = checkpoint.differences(ckpt)
        if differences and restart_on_config_change:
            segments.set_aside(_replay_dir(checkpoint_path.with_suffix(".stale.pt")))
        ckpt = checkpoint.accept(ckpt, differences, "rerun with --restart-on-config-change "
                                 f"to keep it and {segments.directory} aside and start afresh",
                                 restart_on_config_change)
    if ckpt is not None:
        agent.load_state_dict(ckpt["agent"])
        rows = segments.load(ckpt["step"], replay.KEYS)
        for k in replay.KEYS:
            replay.data[k][:, :ckpt["step"]] = torch.from_numpy(rows[k])
        replay.size = start = ckpt["step"]
        episodes = [[tuple(e) for e in ep] for ep in ckpt["episodes"]]
        envs.set_state(ckpt["envs"], ckpt["obs"], ckpt["ep_return"], ckpt["ep_length"],
                       ckpt["ep_success"])
        # Checkpoints written before Checkpoint.rng_states kept two lists.
        rngs = ckpt.get("rng") or {"numpy": ckpt["numpy_rngs"], "torch": ckpt["torch_rngs"]}
        Checkpoint.restore_rngs(rngs, numpy_gens, torch_gens)
        log.info("%s: resumed from %s at step %d", cfg.family, checkpoint_path, start)
    else:
        segments.remove()       # left by a run killed before its first checkpoint
    saved = {"step": start}

    def save_checkpoint(step: int) -> None:
        """Append the rows since the last checkpoint, then (atomically) the state that
        records them: a kill between the two leaves the old checkpoint valid."""
        _check_finite(cfg, agent, episodes, step)
        segments.append({k: v[:, saved["step"]:step].numpy() for k, v in replay.data.items()},
                        saved["step"], step)
        checkpoint.save({
            "step": step, "agent": agent.state_dict(),
            "episodes": episodes, "envs": envs.get_state(), "obs": envs.obs.copy(),
            "ep_return": envs.episode_return.copy(), "ep_length": envs.episode_length.copy(),
            "ep_success": envs.episode_success.copy(),
            "rng": Checkpoint.rng_states(numpy_gens, torch_gens),
        })
        saved["step"] = step

    t0 = time.perf_counter()
    logged = {"step": start, "time": t0}    # the last log line's step and time
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress,
               desc=f"behaviour {cfg.family} ({len(cfg.tasks)} tasks, {cfg.algorithm})",
               unit="step", dynamic_ncols=True)
    for step in range(start, cfg.steps):
        if step < cfg.learning_starts:
            actions = np.stack([g.uniform(-1.0, 1.0, size=act_dim) for g in numpy_gens]
                               ).astype(np.float32)
        else:
            actions = agent.act(torch.from_numpy(envs.obs).to(device)).cpu().numpy()
        obs, next_obs, rewards, terminals, timeouts, finished = envs.step(actions)
        replay.add(observations=obs, actions=actions, rewards=rewards,
                   next_observations=next_obs, terminals=terminals, timeouts=timeouts)
        for i, ret, _, success in finished:
            episodes[i].append((float(ret), step + 1, success))
        if cfg.updates_at(step):
            batch = replay.sample(cfg.batch_size, torch_gens)
            agent.update(TransitionBatch(*(t.to(device) for t in batch)))
        bar.update(1)
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            last = [ep[-1][0] if ep else float("nan") for ep in episodes]
            bar.set_postfix(mean_return=f"{np.nanmean(last):.1f}" if episodes[0] else "n/a")
            # The rate since the previous line, not since the start: the random-action
            # warm-up runs ~10x faster than learning and would hide what the rest will cost.
            now = time.perf_counter()
            rate = (step + 1 - logged["step"]) / max(now - logged["time"], 1e-9)
            logged.update(step=step + 1, time=now)
            log.info("%s step %d (%.1f steps/s, %.1f min to go): last episode return per task: "
                     "%s", cfg.family, step + 1, rate, (cfg.steps - step - 1) / rate / 60,
                     ", ".join(f"t{t:02d} {r:.1f}" for t, r in zip(cfg.tasks, last)))
            if family.success_flag:
                recent = [np.mean([e[2] for e in ep[-10:]]) if ep else float("nan")
                          for ep in episodes]
                log.info("%s step %d: success rate of the last 10 episodes per task: %s",
                         cfg.family, step + 1,
                         ", ".join(f"t{t:02d} {s:.1f}" for t, s in zip(cfg.tasks, recent)))
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 \
                and step + 1 < cfg.steps:
            save_checkpoint(step + 1)
    bar.close()

    _check_finite(cfg, agent, episodes, cfg.steps)
    _write_lifetime(lifetime_path, cfg, replay, episodes, family.env_id,
                    elapsed=time.perf_counter() - t0, success_flag=family.success_flag)
    save_state(policy_path, {"config": dataclasses.asdict(cfg), "agent": agent.state_dict(),
                             "obs_dim": obs_dim, "act_dim": act_dim})
    checkpoint_path.unlink(missing_ok=True)
    segments.remove()
    return lifetime_path


def _replay_dir(checkpoint_path: Path) -> Path:
    """Where a checkpoint's replay segments live: ``resume.pt`` -> ``resume.replay/``."""
    return checkpoint_path.with_name(checkpoint_path.stem + ".replay")


def _check_finite(cfg: BehaviourConfig, agent, episodes, step: int) -> None:
    """Refuse to checkpoint or export a run whose networks or episode returns are not finite
    (a diverged critic): the last good checkpoint stays the one a rerun resumes from."""
    bad = non_finite({k: v for k, v in agent.state_dict().items() if not k.endswith("_opt")})
    if bad:
        raise FloatingPointError(
            f"behaviour {cfg.family}: the {bad[0].split('.')[0]} parameters are not finite at "
            f"step {step}; nothing was saved (lower the learning rates or change the seed)")
    for task, ep in zip(cfg.tasks, episodes):
        bad = [i for i, e in enumerate(ep) if not np.isfinite(e[0])]
        if bad:
            raise FloatingPointError(
                f"behaviour {cfg.family}: task {task}'s episode {bad[0]} has return {ep[bad[0]][0]} "
                f"at step {step}; nothing was saved")


def _write_lifetime(path: Path, cfg: BehaviourConfig, replay: LifetimeReplay,
                    episodes: list[list[tuple[float, int, bool]]], env_id: str, elapsed: float,
                    success_flag: bool = False) -> None:
    """Write every task's transitions up to its last finished episode, atomically, with the
    episode returns (and, for a family with a success flag, ``episode_successes`` as 0/1).
    Every dataset carries a Fletcher-32 checksum (chunked, as the buffers'), which the export
    verifies; the values stored are the same as without it."""
    with atomic_hdf5(path) as f:        # built in memory: a full disk is one clear error
        f.attrs.update({"format": LIFETIME_FORMAT, "family": cfg.family, "env_id": env_id,
                        "algorithm": cfg.algorithm, "policy_steps": cfg.steps,
                        "config": json.dumps(dataclasses.asdict(cfg)),
                        "provenance": json.dumps(provenance(), sort_keys=True),
                        "wall_clock_s": elapsed})
        for i, task in enumerate(cfg.tasks):
            if not episodes[i]:
                raise RuntimeError(f"{cfg.family} task {task}: no episode finished within "
                                   f"{cfg.steps} steps; raise steps")
            end = episodes[i][-1][1]
            g = f.create_group(f"task{task:02d}")
            g.attrs["task_id"] = task
            for k in replay.KEYS:
                g.create_dataset(k, data=replay.data[k][i, :end].numpy(), fletcher32=True,
                                 chunks=True)
            g.create_dataset("episode_returns",
                             data=np.array([e[0] for e in episodes[i]], dtype=np.float32),
                             fletcher32=True, chunks=True)
            if success_flag:
                g.create_dataset("episode_successes",
                                 data=np.array([e[2] for e in episodes[i]], dtype=np.float32),
                                 fletcher32=True, chunks=True)
