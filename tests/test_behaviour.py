"""Behaviour-policy ensemble: task independence, SAC maths, lifetime files, resume."""

from __future__ import annotations

import dataclasses
import logging
import pickle
import types

import h5py
import numpy as np
import pytest
import torch
from conftest import Payload

import macaw.behaviour.trainer as trainer
from macaw.behaviour import BehaviourConfig, train_behaviour
from macaw.behaviour.agents import EnsembleSAC, EnsembleTD3, TransitionBatch, TwinCritic
from macaw.behaviour.ensemble import EnsembleLinear, EnsembleMLP
from macaw.envs import FAMILIES
from macaw.runs import SegmentStore, load_state, save_state


def test_ensemble_linear_is_a_per_member_affine_map():
    layer = EnsembleLinear(3, 4, 5)
    x = torch.randn(3, 7, 4)
    y = layer(x)
    for m in range(3):
        torch.testing.assert_close(y[m], x[m] @ layer.weight[m] + layer.bias[m])


def test_member_gradients_do_not_depend_on_other_members():
    """Member 0's gradient equals that of a plain MLP with its weights, whatever member 1 sees."""
    torch.manual_seed(0)
    net = EnsembleMLP(2, 4, [8], 1).double()
    x = torch.randn(2, 16, 4, dtype=torch.float64)

    def member0_grads(inputs):
        net.zero_grad()
        net(inputs).pow(2).mean(dim=(1, 2)).sum().backward()
        return [p.grad[0].clone() for p in net.parameters()]

    g = member0_grads(x)
    x_other = x.clone()
    x_other[1] = torch.randn(16, 4, dtype=torch.float64) * 10
    for a, b in zip(g, member0_grads(x_other)):
        torch.testing.assert_close(a, b)

    # Same maths as torch.nn.Linear layers holding member 0's weights.
    l1, l2 = net.layers
    plain = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    plain = plain.double()
    with torch.no_grad():
        plain[0].weight.copy_(l1.weight[0].T)
        plain[0].bias.copy_(l1.bias[0, 0])
        plain[2].weight.copy_(l2.weight[0].T)
        plain[2].bias.copy_(l2.bias[0, 0])
    plain(x[0]).pow(2).mean().backward()
    torch.testing.assert_close(g[0], plain[0].weight.grad.T)
    torch.testing.assert_close(g[3][0], plain[2].bias.grad)


def test_sac_log_prob_matches_tanh_gaussian():
    """The squashed-Gaussian log-density against torch.distributions' closed form."""
    torch.manual_seed(0)
    agent = EnsembleSAC(2, 3, 2, [8])
    obs = torch.randn(2, 5, 3)
    torch.manual_seed(1)
    action, log_prob, _ = agent._policy(obs)
    mean, log_std = agent.actor(obs).chunk(2, dim=-1)
    log_std = -5 + 0.5 * 7 * (torch.tanh(log_std) + 1)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()])
    expected = dist.log_prob(action.clamp(-0.999999, 0.999999)).sum(-1)
    torch.testing.assert_close(log_prob, expected, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("agent_cls", [EnsembleSAC, EnsembleTD3])
def test_critic_learns_the_reward_when_gamma_is_zero(agent_cls):
    """Terminal transitions cut the bootstrap: with gamma 0 the critic target is the reward."""
    torch.manual_seed(0)
    agent = agent_cls(2, 3, 2, [16], gamma=0.0, critic_lr=1e-2)
    obs = torch.randn(2, 32, 3)
    batch = TransitionBatch(obs, torch.rand(2, 32, 2) * 2 - 1, torch.full((2, 32), 3.0),
                            torch.randn(2, 32, 3), torch.zeros(2, 32))
    for _ in range(800):
        agent.update(batch)
    q = agent.critic(batch.observations, batch.actions)
    torch.testing.assert_close(q, torch.full_like(q, 3.0), atol=0.15, rtol=0)


def _cfg(**kw) -> BehaviourConfig:
    base = dict(family="cheetah-vel", tasks=[0, 5], algorithm="td3", steps=600,
                learning_starts=100, width=16, n_hidden=2, batch_size=16, checkpoint_every=200,
                log_every=200)
    return BehaviourConfig(**{**base, **kw})


def test_lifetime_file_keeps_every_transition(tiny_lifetime):
    with h5py.File(tiny_lifetime) as f:
        assert sorted(f) == ["task03", "task11"]
        assert f.attrs["algorithm"] == "td3" and f.attrs["policy_steps"] == 500
        for name in ("task03", "task11"):
            g = f[name]
            # Cheetah never terminates: 2 full 200-step episodes, the unfinished 100 dropped.
            assert g["rewards"].shape == (400,)
            assert g["observations"].shape == (400, 17) and g["actions"].shape == (400, 6)
            assert not g["terminals"][()].any()
            assert np.flatnonzero(g["timeouts"][()]).tolist() == [199, 399]
            rewards = g["rewards"][()]
            np.testing.assert_allclose(g["episode_returns"][()],
                                       [rewards[:200].sum(), rewards[200:].sum()], rtol=1e-5)
            # Transitions chain: next observation is the following observation within episodes.
            np.testing.assert_array_equal(g["next_observations"][:199], g["observations"][1:200])


@pytest.mark.parametrize("checkpoint_every,resume_step", [(200, 400), (150, 300)])
def test_killed_run_resumes_to_the_same_lifetime(tmp_path, monkeypatch, checkpoint_every,
                                                 resume_step):
    """Resumed at an episode boundary (step 400, contact-free after the reset) and in the
    middle of an episode (step 300, the cheetah on the ground: active contacts)."""
    cfg = _cfg(checkpoint_every=checkpoint_every)
    full = train_behaviour(cfg, tmp_path / "a" / "lifetime.h5", tmp_path / "a" / "policy.pt",
                           progress=False)

    calls = {"n": 0}
    original = EnsembleTD3.update

    def crash_after_350(self, batch):
        calls["n"] += 1
        if calls["n"] == 350:
            raise KeyboardInterrupt("simulated kill")
        return original(self, batch)

    monkeypatch.setattr(EnsembleTD3, "update", crash_after_350)
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        train_behaviour(cfg, out / "lifetime.h5", out / "policy.pt", progress=False)
    assert (out / "resume.pt").exists() and not (out / "lifetime.h5").exists()
    assert load_state(out / "resume.pt")["step"] == resume_step
    # The replay is appended, one segment per checkpoint, never re-saved.
    assert sorted(p.name for p in (out / "resume.replay").iterdir()) == [
        f"{a:012d}-{a + checkpoint_every:012d}.npz"
        for a in range(0, resume_step, checkpoint_every)]
    monkeypatch.setattr(EnsembleTD3, "update", original)
    resumed = train_behaviour(cfg, out / "lifetime.h5", out / "policy.pt", progress=False)
    assert not (out / "resume.pt").exists() and not (out / "resume.replay").exists()

    with h5py.File(full) as a, h5py.File(resumed) as b:
        for task in a:
            for key in a[task]:
                np.testing.assert_array_equal(a[task][key][()], b[task][key][()],
                                              err_msg=f"{task}/{key}")


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    cfg = _cfg()
    torch.save({"config": dataclasses.asdict(_cfg(steps=999))}, tmp_path / "resume.pt")
    with pytest.raises(ValueError, match="another config"):
        train_behaviour(cfg, tmp_path / "lifetime.h5", tmp_path / "policy.pt", progress=False)


def test_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"cheetah-vel.*unknown field.*'totl_steps'"):
        BehaviourConfig.from_dict("cheetah-vel", {"tasks": [0], "totl_steps": 5})


def test_twin_critic_q1_equals_first_half_of_forward():
    critic = TwinCritic(3, 4, 2, [8, 8])
    obs, act = torch.randn(3, 5, 4), torch.randn(3, 5, 2)
    torch.testing.assert_close(critic.q1(obs, act), critic(obs, act)[0])


MUJOCO_FAMILIES = [f for f in FAMILIES if f != "point-goal"]


def _mujoco_data(env):
    u = env.unwrapped
    return u.metaworld_env.data if hasattr(u, "metaworld_env") else u.data


@pytest.mark.parametrize("family", MUJOCO_FAMILIES)
def test_restored_simulator_state_steps_bit_identically_with_active_contacts(family, tmp_path):
    """mj_forward after mj_setState re-solves active contacts and changes the solver's warm
    start; the restore must put it back, or the next step differs from the uninterrupted one.
    The state goes through a checkpoint file (save_state/load_state) on the way."""
    from macaw.behaviour.trainer import TaskEnvs

    rng = np.random.default_rng(0)
    envs = TaskEnvs(family, [0, 1], seed=0)
    act_dim = envs.envs[0].action_space.shape[0]
    for _ in range(150):                      # until both bodies touch something at once
        envs.step(rng.uniform(-1, 1, size=(2, act_dim)).astype(np.float32))
        if all(_mujoco_data(env).ncon > 0 for env in envs.envs):
            break
    assert all(_mujoco_data(env).ncon > 0 for env in envs.envs)
    save_state(tmp_path / "state.pt", {"envs": envs.get_state(), "obs": envs.obs.copy()})
    saved = (load_state(tmp_path / "state.pt")["envs"], envs.obs.copy(),
             envs.episode_return.copy(), envs.episode_length.copy(),
             envs.episode_success.copy())
    warm = [_mujoco_data(env).qacc_warmstart.copy() for env in envs.envs]
    actions = rng.uniform(-1, 1, size=(5, 2, act_dim)).astype(np.float32)
    straight = [envs.step(a)[1].copy() for a in actions]
    envs.set_state(*saved)
    for env, w in zip(envs.envs, warm):
        np.testing.assert_array_equal(_mujoco_data(env).qacc_warmstart, w)
    again = [envs.step(a)[1].copy() for a in actions]
    for a, b in zip(straight, again):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad,match", [
    ({"steps": -5}, "steps: input should be greater than or equal to 1, found -5"),
    ({"steps": "5"}, "steps: input should be a valid integer, found '5'"),
    ({"algorithm": "ppo"}, "algorithm: input should be 'sac' or 'td3', found 'ppo'"),
    ({"width": 0}, "width: input should be greater than or equal to 1, found 0"),
    ({"n_hidden": [2]}, r"n_hidden: input should be a valid integer, found \[2\]"),
    ({"gamma": 1.5}, "gamma: input should be less than or equal to 1"),
    ({"family": "ant-dir"}, r"unknown field\(s\) \['family'\]")])
def test_behaviour_config_errors_name_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        BehaviourConfig.from_dict("cheetah-vel", {"tasks": [0], **bad})


def test_a_crafted_checkpoint_does_not_run_its_payload(tmp_path):
    """A resume.pt that is a pickle calling open(marker) is refused with a clear error; the
    same file loaded the unsafe way does create the marker, so the test can tell."""
    cfg = _cfg()
    marker = tmp_path / "payload-ran"
    torch.save({"config": Payload(marker)}, tmp_path / "resume.pt")
    with pytest.raises(ValueError, match=r"resume\.pt: not a loadable checkpoint"):
        train_behaviour(cfg, tmp_path / "lifetime.h5", tmp_path / "policy.pt", progress=False)
    assert not marker.exists() and not (tmp_path / "lifetime.h5").exists()
    torch.load(tmp_path / "resume.pt", weights_only=False)
    assert marker.exists()


def test_state_files_keep_numpy_dtypes_and_refuse_other_objects(tmp_path):
    state = {"a": np.arange(3, dtype=np.float32), "s": np.float32(1.5), "i": np.int64(7),
             "nested": [(1, np.zeros((2, 2), dtype=bool))], "t": torch.ones(2), "x": None}
    save_state(tmp_path / "s.pt", state)
    back = load_state(tmp_path / "s.pt")
    assert back["a"].dtype == np.float32 and back["a"].tolist() == [0, 1, 2]
    assert type(back["s"]) is np.float32 and back["s"] == 1.5
    assert type(back["i"]) is np.int64 and back["i"] == 7
    assert back["nested"][0][0] == 1 and back["nested"][0][1].dtype == np.bool_
    assert torch.equal(back["t"], torch.ones(2)) and back["x"] is None
    with pytest.raises(TypeError, match=r"state\.o"):
        save_state(tmp_path / "bad.pt", {"o": np.array(["text"])})
    (tmp_path / "junk.pt").write_bytes(pickle.dumps(Payload(tmp_path / "m")))
    with pytest.raises(ValueError, match="junk.pt: not a loadable checkpoint"):
        load_state(tmp_path / "junk.pt")
    assert not (tmp_path / "m").exists()


def test_segment_store_tiles_rows_and_drops_segments_past_the_checkpoint(tmp_path):
    store = SegmentStore(tmp_path / "seg", axis=1)
    rows = np.arange(2 * 10).reshape(2, 10)
    for a, b in ((0, 4), (4, 7), (7, 10)):
        store.append({"x": rows[:, a:b]}, a, b)
    np.testing.assert_array_equal(store.load(7, ("x",))["x"], rows[:, :7])
    assert len(list((tmp_path / "seg").iterdir())) == 2      # 7-10: written after the ckpt
    with pytest.raises(ValueError, match="segments hold rows"):
        store.load(10, ("x",))
    store.append({"x": rows[:, 8:10]}, 8, 10)                  # a gap: 7..8 missing
    with pytest.raises(ValueError, match="does not continue"):
        store.load(10, ("x",))
    with pytest.raises(ValueError, match="expected 3"):
        store.append({"x": rows[:, :2]}, 0, 3)


def test_diverged_behaviour_run_saves_nothing(tmp_path, monkeypatch):
    """NaN parameters at a checkpoint: FloatingPointError naming the family and the step,
    no checkpoint, no lifetime file."""
    original = EnsembleTD3.update

    def diverge(self, batch):
        stats = original(self, batch)
        if self.n_updates >= 50:
            with torch.no_grad():
                next(self.critic.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(EnsembleTD3, "update", diverge)
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"cheetah-vel: the \w+ parameters are not "
                                                 r"finite at step 200"):
        train_behaviour(_cfg(), out / "lifetime.h5", out / "policy.pt", progress=False)
    assert not (out / "resume.pt").exists() and not (out / "lifetime.h5").exists()


@pytest.mark.parametrize("algorithm", ["td3", "sac"])
def test_a_tasks_lifetime_does_not_depend_on_the_tasks_beside_it(tmp_path, algorithm):
    """The workflow may train a family's tasks in chunks (families.<f>.tasks_per_job): given the
    seed, task 5's data and task 0's are bit-identical whether trained together or alone."""
    def lifetime(tasks):
        out = tmp_path / algorithm / "-".join(map(str, tasks))
        cfg = _cfg(tasks=tasks, algorithm=algorithm, steps=500, checkpoint_every=0)
        path = train_behaviour(cfg, out / "lifetime.h5", out / "policy.pt", progress=False)
        with h5py.File(path) as f:
            return {f"task{t:02d}": {k: f[f"task{t:02d}"][k][()] for k in f[f"task{t:02d}"]}
                    for t in tasks}

    together = lifetime([0, 5])
    for task in (0, 5):
        alone = lifetime([task])[f"task{task:02d}"]
        for key, value in together[f"task{task:02d}"].items():
            np.testing.assert_array_equal(alone[key], value, err_msg=f"task {task} {key}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_it_names_the_config(tmp_path):
    with pytest.raises(ValueError, match="behaviour config of 'cheetah-vel': device 'cuda' "
                                         "requested but CUDA is unavailable"):
        train_behaviour(_cfg(device="cuda"), tmp_path / "l.h5", tmp_path / "p.pt",
                        progress=False)


def test_log_lines_give_the_rate_since_the_previous_line(tmp_path, monkeypatch, caplog):
    """A fake clock reads 0 at the start and 60, 180, 240 s at the three log lines (200 steps
    apart): each line's rate is its own interval's (3.3, 1.7, 3.3 steps/s), not the running
    mean since the start (which would say 2.2 at the second line), and its time to go is the
    steps left at that rate (400 / 3.3 and 200 / 1.7 steps/s: 2 minutes each)."""
    clock = iter([0.0, 60.0, 180.0, 240.0, 240.0])
    monkeypatch.setattr(trainer, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger=trainer.__name__):
        train_behaviour(_cfg(checkpoint_every=0), out / "lifetime.h5", out / "policy.pt",
                        progress=False)
    lines = [r.getMessage() for r in caplog.records if "steps/s" in r.getMessage()]
    assert [line.split(": last")[0] for line in lines] == [
        "cheetah-vel step 200 (3.3 steps/s, 2.0 min to go)",
        "cheetah-vel step 400 (1.7 steps/s, 2.0 min to go)",
        "cheetah-vel step 600 (3.3 steps/s, 0.0 min to go)"]


def test_the_late_phase_updates_every_kth_step_and_keeps_the_learning_phase(tmp_path,
                                                                            monkeypatch):
    """600 steps, learning from step 100 (the 100th step's update is the first), a late phase
    from step 300 with one update every 4 steps: 201 + 75 updates instead of 501. Every row
    up to the late phase is the one a plain run writes (the late phase changes only what
    comes after it), and a late phase with ``late_update_every: 1`` is the plain run."""
    calls = {"n": 0}
    original = EnsembleTD3.update

    def counted(self, batch):
        calls["n"] += 1
        return original(self, batch)

    monkeypatch.setattr(EnsembleTD3, "update", counted)

    def lifetime(name, **kw):
        calls["n"] = 0
        path = train_behaviour(_cfg(checkpoint_every=0, **kw), tmp_path / name / "l.h5",
                               tmp_path / name / "p.pt", progress=False)
        with h5py.File(path) as f:
            return calls["n"], {k: f["task00"][k][()] for k in ("observations", "actions")}

    n_plain, plain = lifetime("plain")
    n_late, late = lifetime("late", late_phase_from=300, late_update_every=4)
    n_same, same = lifetime("same", late_phase_from=300, late_update_every=1)
    assert n_plain == n_same == 501 and n_late == 201 + 75
    for k in plain:
        np.testing.assert_array_equal(plain[k], same[k])
        # step 301's action follows the update after step 300, the last one both runs share
        np.testing.assert_array_equal(plain[k][:302], late[k][:302])
        assert not np.array_equal(plain[k][302:], late[k][302:])


@pytest.mark.parametrize("late", [50, 600])
def test_the_late_phase_must_start_inside_the_lifetime(late):
    values = {k: v for k, v in dataclasses.asdict(_cfg(late_phase_from=late)).items()
              if k != "family"}
    with pytest.raises(ValueError, match=r"late_phase_from \(%d\) must lie in "
                       r"\[learning_starts, steps\) = \[100, 600\)" % late):
        BehaviourConfig.from_dict("cheetah-vel", values)
