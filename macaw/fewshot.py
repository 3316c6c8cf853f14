"""Few-shot classification with MAML: does the weight transform speed up meta-learning?
(paper Fig. 6, Appendix C.3).

The paper uses 20-way 1-shot Omniglot. Omniglot cannot be downloaded here (docs/design.md §5), so
the task distribution is built from scikit-learn's bundled ``load_digits`` (1797 images of 8x8
pixels, 10 classes, ~180 images per class; pixels scaled to [0, 1]):

- **Classes and split.** As for Omniglot (Santoro et al., 2016; Vinyals et al., 2016), each
  image rotated by 90, 180 and 270 degrees is a new class, so a class is (digit, rotation):
  40 classes. Meta-training tasks use only digits 0-4 (:data:`TRAIN_CLASSES`, 20 classes),
  meta-test tasks only digits 5-9 (:data:`TEST_CLASSES`, 20 classes): no shape of a test
  task was seen in meta-training. Rotations keep a shape's handedness (unlike flips, which
  would turn a 2 into something 5-like), so they leak nothing across the split. Without the
  rotations each side has only 5 classes, every 5-way task is then the same 5 digits in a
  new label order, and MAML memorises them (perfect training, poor test accuracy;
  docs/design.md §5).
  Some classes look alike (6 at 180 degrees is a 9), which caps the reachable accuracy.
- **Tasks.** N-way K-shot, by default **5-way 1-shot** (chance 20%; config/paper.yaml uses
  the paper's 20-way): N classes of one side in a random order (the label permutation),
  K support and ``query_per_class`` query images per class, all distinct; labels
  ``0..N-1``.
- **Models.** An MLP ``64 -> h -> h -> h -> h -> N`` (4 hidden layers, ReLU), built from the
  project's layers (:mod:`macaw.nets.layers`), in three variants: ``wt`` (every layer a
  weight-transform layer, h = 128, latent 32), ``nowt_width`` (plain layers, h = 128) and
  ``nowt_params`` (plain layers of the width whose parameter count is closest to ``wt``'s:
  :func:`nowt_params_width`; 790 for the defaults).
- **MAML** (Finn et al., 2017), full second order: ``inner_steps`` SGD steps on the support
  set's mean cross-entropy, ``theta' = theta - alpha * grad`` (as MACAW's Eq. 2-3), then the
  query set's cross-entropy of ``theta'``, averaged over a meta-batch of tasks, is minimised
  by Adam. ``alpha`` is one learned rate per parameter tensor (``softplus(rho)``, started at
  ``inner_lr``), as in MACAW: a WT layer's step on its effective weights is larger than a
  plain layer's at the same rate (``|z|^2`` scales it), so a fixed shared rate would compare
  step sizes, not architectures; learning it lets each variant pick its own. Defaults
  (= config/config.yaml): 1 inner step and a starting rate of 0.4, MAML's Omniglot
  settings; one step is also where a plain layer's update is most restricted (rank <= the
  N*K support images) and the WT's rank-``latent`` update should help most (Appendix B).
  With the authors' WT initialisation (``wt_init``, default) WT leads both No-WT models from
  the first evaluations; with our earlier z ~ U(-1, 1) init it was level with "No WT, equal
  width" at this starting rate (docs/results/fig6_init/).
- **Evaluation** (every ``eval_every`` meta-steps, and at step 0): mean query accuracy over
  ``eval_tasks`` freshly sampled test-class tasks after the same inner-loop adaptation. The
  evaluation tasks depend only on (seed, step), so the three variants of a seed are scored on
  identical tasks.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal, NamedTuple

import numpy as np
import torch
import yaml
from pydantic import Field
from tqdm.auto import tqdm

from macaw.fields import NonNegativeInt, PositiveFloat, PositiveInt, config_class, parse_config
from macaw.io import atomic_path, write_csv
from macaw.nets.layers import WT_INITS, LayerSpec, Params, affine
from macaw.nets.networks import MetaNet, equal_params_width
from macaw.nets.optim import inverse_softplus, sgd_step
from macaw.provenance import provenance
from macaw.runs import Checkpoint, non_finite

log = logging.getLogger(__name__)


def class_id(digit: int | np.ndarray, quarter_turns: int) -> int | np.ndarray:
    """A class is a digit rotated by ``quarter_turns`` x 90 degrees; its digit is ``id % 10``."""
    return digit + 10 * quarter_turns


ROTATIONS = 4
TRAIN_DIGITS = (0, 1, 2, 3, 4)
TEST_DIGITS = (5, 6, 7, 8, 9)
TRAIN_CLASSES = tuple(class_id(d, k) for k in range(ROTATIONS) for d in TRAIN_DIGITS)
"""Classes of the meta-training tasks: digits 0-4, each at 4 rotations."""
TEST_CLASSES = tuple(class_id(d, k) for k in range(ROTATIONS) for d in TEST_DIGITS)
"""Classes of the meta-test (evaluation) tasks: digits 5-9, each at 4 rotations."""
VARIANTS = ("wt", "nowt_width", "nowt_params")
VARIANT_LABELS = {"wt": "Weight Transform", "nowt_width": "No WT, equal width",
                  "nowt_params": "No WT, equal params"}
N_PIXELS = 64
EVAL_CHUNK = 50
"""Evaluation tasks adapted together (bounds memory; results do not depend on it)."""


@config_class
class FewShotConfig:
    """One few-shot meta-training run (one variant, one seed)."""

    variant: Literal[VARIANTS] = "wt"
    """Model: ``wt``, ``nowt_width`` or ``nowt_params`` (see module docstring)."""
    seed: NonNegativeInt = 0
    """Seeds the initial weights, the training tasks and the evaluation tasks."""
    ways: Annotated[int, Field(ge=2, le=min(len(TRAIN_CLASSES), len(TEST_CLASSES)))] = 5
    """N: classes per task (at most 20, the classes of each side of the split)."""
    shots: PositiveInt = 1
    """K: support images per class."""
    query_per_class: PositiveInt = 5
    """Query images per class (the outer loss and the accuracy are computed on these)."""
    inner_steps: PositiveInt = 1
    """SGD steps of adaptation on the support set (training and evaluation)."""
    inner_lr: PositiveFloat = 0.4
    """Initial inner learning rate of every parameter tensor."""
    learn_inner_lr: bool = True
    """Learn one inner rate per parameter tensor in the outer loop (off: fixed ``inner_lr``)."""
    outer_lr: PositiveFloat = 1e-3
    """Adam rate of the meta-parameters (and of the inner-rate logits)."""
    tasks_per_batch: PositiveInt = 8
    """Tasks per meta-training step."""
    steps: PositiveInt = 300
    """Meta-training steps."""
    eval_every: PositiveInt = 25
    """Evaluate every this many steps (and at step 0 and the last step)."""
    eval_tasks: PositiveInt = 100
    """Test-class tasks sampled afresh for each evaluation."""
    width: PositiveInt = 128
    """Hidden units per layer of the ``wt`` and ``nowt_width`` models."""
    latent: PositiveInt = 32
    """Weight-transform latent size of the ``wt`` model."""
    n_hidden: PositiveInt = 4
    """Hidden layers."""
    wt_init: Literal[WT_INITS] = "authors"
    """WT layer initialisation (:func:`macaw.nets.layers.init_layer`): the authors' WLinear
    (z ~ N(0, 1/out^2)) or ``uniform`` (z ~ U(-1, 1), our earlier choice)."""

    RENAMED: ClassVar[dict[str, str]] = {"meta_batch": "tasks_per_batch", "hidden": "width"}
    """Old field name -> its new name (:func:`macaw.fields.parse_config` names it)."""

    @classmethod
    def from_dict(cls, values: dict) -> "FewShotConfig":
        """Checked: every field's name, type and range (its annotation; ``ways`` at most the
        classes on each side of the split)."""
        return parse_config(cls, values, "few-shot config")


# ------------------------------------------------------------------------------ tasks

class DigitImages(NamedTuple):
    """Every image of every class: ``x (n, 64)`` in [0, 1]; ``y (n,)`` its class
    ``digit + 10 * quarter_turns`` (see :func:`class_id`)."""

    x: torch.Tensor
    y: np.ndarray


def load_digit_images() -> DigitImages:
    """The 1797 digits, each also rotated by 90, 180 and 270 degrees (40 classes)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = data.images / 16.0                                   # (n, 8, 8), in [0, 1]
    x = np.concatenate([np.rot90(pixels, k, axes=(1, 2)).reshape(len(pixels), N_PIXELS)
                        for k in range(ROTATIONS)])
    y = np.concatenate([class_id(data.target, k) for k in range(ROTATIONS)])
    return DigitImages(torch.as_tensor(x, dtype=torch.float32), y.astype(np.int64))


class FewShotTasks(NamedTuple):
    """A batch of T N-way tasks. Labels are ``0..N-1``; ``classes[t, i]`` is the class that
    label ``i`` stands for in task ``t``; ``*_index`` are the images' rows in
    :class:`DigitImages`."""

    support_x: torch.Tensor        # (T, N * shots, 64)
    support_y: torch.Tensor        # (T, N * shots)
    query_x: torch.Tensor          # (T, N * query, 64)
    query_y: torch.Tensor          # (T, N * query)
    classes: np.ndarray            # (T, N)
    support_index: np.ndarray      # (T, N * shots)
    query_index: np.ndarray        # (T, N * query)


def sample_tasks(images: DigitImages, classes: tuple[int, ...], n_tasks: int, ways: int,
                 shots: int, query: int, rng: np.random.Generator) -> FewShotTasks:
    """``n_tasks`` tasks whose classes are drawn from ``classes`` only (in a random order,
    which is the label permutation), with ``shots + query`` distinct images per class."""
    by_class = {c: np.flatnonzero(images.y == c) for c in classes}
    chosen, support, queries = [], [], []
    for _ in range(n_tasks):
        task_classes = rng.choice(np.asarray(classes), size=ways, replace=False)
        picks = [rng.choice(by_class[int(c)], size=shots + query, replace=False)
                 for c in task_classes]
        chosen.append(task_classes)
        support.append(np.concatenate([idx[:shots] for idx in picks]))
        queries.append(np.concatenate([idx[shots:] for idx in picks]))
    support_index, query_index = np.stack(support), np.stack(queries)
    labels = np.arange(ways)
    return FewShotTasks(
        images.x[support_index], torch.as_tensor(np.tile(np.repeat(labels, shots), (n_tasks, 1))),
        images.x[query_index], torch.as_tensor(np.tile(np.repeat(labels, query), (n_tasks, 1))),
        np.stack(chosen), support_index, query_index)


# ----------------------------------------------------------------------------- models

def classifier_net(ways: int, width: int, latent: int, n_hidden: int,
                   in_features: int = N_PIXELS) -> MetaNet:
    """``in -> width x n_hidden -> ways``; ``latent > 0`` makes every layer a WT layer."""
    sizes = [in_features] + [width] * n_hidden
    hidden = [LayerSpec(f"l{i}", a, b, latent) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    return MetaNet("classifier", (*hidden, LayerSpec("out", width, ways, latent)))


def nowt_params_width(ways: int, width: int, latent: int, n_hidden: int,
                      in_features: int = N_PIXELS) -> int:
    """Hidden width of a plain classifier whose parameter count is closest to that of the WT
    classifier of ``width`` and ``latent`` (the "No WT, equal params" model;
    :func:`macaw.nets.networks.equal_params_width`)."""
    return equal_params_width(
        lambda w, lat: (classifier_net(ways, w, lat, n_hidden, in_features),), width, latent)


def variant_net(cfg: FewShotConfig) -> MetaNet:
    if cfg.variant == "wt":
        return classifier_net(cfg.ways, cfg.width, cfg.latent, cfg.n_hidden)
    if cfg.variant == "nowt_width":
        return classifier_net(cfg.ways, cfg.width, 0, cfg.n_hidden)
    if cfg.variant == "nowt_params":
        width = nowt_params_width(cfg.ways, cfg.width, cfg.latent, cfg.n_hidden)
        return classifier_net(cfg.ways, width, 0, cfg.n_hidden)
    raise ValueError(f"unknown variant {cfg.variant!r}; expected one of {VARIANTS}")


def classifier_logits(net: MetaNet, params: Params, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(T, B, ways)`` of inputs ``x (T, B, in)`` under shared parameters or
    per-task parameters (every tensor with a leading task dim)."""
    *hidden, out = net.weights(params)
    for w, b in hidden:
        x = torch.relu(affine(x, w, b))
    return affine(x, *out)


def task_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each task, ``(T,)``."""
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels,
                                             reduction="none").mean(-1)


def adapt(net: MetaNet, params: Params, lrs: dict[str, torch.Tensor], support_x: torch.Tensor,
          support_y: torch.Tensor, n_steps: int) -> Params:
    """MAML's inner loop for T tasks at once: ``n_steps`` of ``p <- p - lr_p * dL_t/dp`` on
    each task's support loss. Returns per-task parameters (leading dim T), differentiable
    with respect to ``params`` and ``lrs`` (second order).

    The shared parameters are expanded to a task dim first; since the tasks' losses are
    independent, the gradient of their sum with respect to task t's copy is task t's own."""
    n_tasks = support_x.shape[0]
    adapted = {k: v.expand(n_tasks, *v.shape) for k, v in params.items()}
    for _ in range(n_steps):
        loss = task_losses(classifier_logits(net, adapted, support_x), support_y).sum()
        adapted = sgd_step(adapted, lrs, loss)
    return adapted


def query_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of query images classified correctly, per task, ``(T,)``."""
    return (logits.argmax(-1) == labels).float().mean(-1)


# --------------------------------------------------------------------------- learner

@dataclass
class FewShotLearner:
    """Meta-parameters: the classifier's initial parameters and the inner-rate logits."""

    net: MetaNet
    params: Params
    rho: dict[str, torch.Tensor]

    @classmethod
    def create(cls, cfg: FewShotConfig) -> "FewShotLearner":
        net = variant_net(cfg)
        params = {k: v.requires_grad_()
                  for k, v in net.init_params(cfg.seed, wt_init=cfg.wt_init).items()}
        rho0 = inverse_softplus(cfg.inner_lr)
        rho = {k: torch.tensor(rho0, requires_grad=cfg.learn_inner_lr) for k in params}
        return cls(net, params, rho)

    def inner_lrs(self) -> dict[str, torch.Tensor]:
        return {k: torch.nn.functional.softplus(v) for k, v in self.rho.items()}

    def optimizer(self, lr: float) -> torch.optim.Adam:
        rho = [v for v in self.rho.values() if v.requires_grad]
        return torch.optim.Adam([*self.params.values(), *rho], lr=lr)


def meta_loss(learner: FewShotLearner, tasks: FewShotTasks, inner_steps: int,
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """MAML's outer objective: mean over tasks of the query cross-entropy after adaptation,
    and the mean query accuracy (no gradient)."""
    adapted = adapt(learner.net, learner.params, learner.inner_lrs(), tasks.support_x,
                    tasks.support_y, inner_steps)
    logits = classifier_logits(learner.net, adapted, tasks.query_x)
    return (task_losses(logits, tasks.query_y).mean(),
            query_accuracy(logits.detach(), tasks.query_y).mean())


def evaluate(learner: FewShotLearner, images: DigitImages, cfg: FewShotConfig,
             step: int) -> float:
    """Mean query accuracy over ``eval_tasks`` fresh test-class tasks after adaptation. The
    tasks depend only on (seed, step): every variant of a seed meets the same ones."""
    rng = np.random.default_rng([cfg.seed, step, 1])
    correct = []
    for start in range(0, cfg.eval_tasks, EVAL_CHUNK):
        n = min(EVAL_CHUNK, cfg.eval_tasks - start)
        tasks = sample_tasks(images, TEST_CLASSES, n, cfg.ways, cfg.shots,
                             cfg.query_per_class, rng)
        adapted = adapt(learner.net, learner.params, learner.inner_lrs(), tasks.support_x,
                        tasks.support_y, cfg.inner_steps)
        with torch.no_grad():
            logits = classifier_logits(learner.net, adapted, tasks.query_x)
            correct.append(query_accuracy(logits, tasks.query_y))
    return float(torch.cat(correct).mean())


def run_fewshot(cfg: FewShotConfig, out_csv: Path, progress: bool = True,
                restart_on_config_change: bool = False) -> list[tuple[int, float]]:
    """Meta-train one variant on the training digits and write ``out_csv`` (``step,
    accuracy``: mean test-task query accuracy) and, beside it, ``<out_csv>.yaml`` (the
    config, the model's width and parameter count, the wall-clock time). Returns the rows.

    After every evaluation the run checkpoints beside ``out_csv``
    (:meth:`macaw.runs.Checkpoint.beside`); a killed run resumes from there and writes the
    same files as an uninterrupted one. The checkpoint is deleted once the outputs are
    written. One of another config is refused, or with ``restart_on_config_change`` kept as
    ``*.checkpoint.stale.pt`` while the run starts afresh."""
    out_csv = Path(out_csv)
    images = load_digit_images()
    learner = FewShotLearner.create(cfg)
    width = learner.net.layers[0].out_features
    n_params = learner.net.n_params()
    log.info("few-shot %s seed %d: width %d, latent %d, %d parameters", cfg.variant, cfg.seed,
             width, learner.net.layers[0].latent, n_params)
    optimizer = learner.optimizer(cfg.outer_lr)
    rng = np.random.default_rng([cfg.seed, 0])
    checkpoint = Checkpoint(Checkpoint.beside(out_csv), dataclasses.asdict(cfg))
    state = checkpoint.load("delete it to start afresh", restart_on_config_change)
    if state is None:
        start, rows, earlier_s = 0, [(0, evaluate(learner, images, cfg, 0))], 0.0
    else:
        with torch.no_grad():
            for saved, tensors in ((state["params"], learner.params), (state["rho"], learner.rho)):
                for name, value in tensors.items():
                    value.copy_(saved[name])
        optimizer.load_state_dict(state["optimizer"])
        Checkpoint.restore_rngs(state["rng"], [rng], [])
        start, rows, earlier_s = state["step"], [tuple(r) for r in state["rows"]], state["wall_s"]
        log.info("few-shot %s seed %d: resumed from %s at step %d", cfg.variant, cfg.seed,
                 checkpoint.path, start)

    def save(step: int) -> None:
        weights = {"params": {k: v.detach() for k, v in learner.params.items()},
                   "rho": {k: v.detach() for k, v in learner.rho.items()}}
        bad = non_finite(weights)
        if bad:
            raise FloatingPointError(f"few-shot {cfg.variant} seed {cfg.seed}: non-finite "
                                     f"{bad[0]} at step {step}; the last good checkpoint is kept")
        checkpoint.save({"step": step, **weights, "optimizer": optimizer.state_dict(),
                         "rng": Checkpoint.rng_states([rng], []), "rows": rows,
                         "wall_s": earlier_s + time.perf_counter() - t0})

    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, dynamic_ncols=True,
               unit="step", desc=f"fewshot {cfg.variant} seed{cfg.seed}")
    bar.set_postfix(test_acc=f"{rows[-1][1]:.3f}")
    t0 = time.perf_counter()
    for step in range(start + 1, cfg.steps + 1):
        tasks = sample_tasks(images, TRAIN_CLASSES, cfg.tasks_per_batch, cfg.ways, cfg.shots,
                             cfg.query_per_class, rng)
        loss, train_acc = meta_loss(learner, tasks, cfg.inner_steps)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"few-shot {cfg.variant} seed {cfg.seed}: non-finite "
                                     f"meta-loss at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            rows.append((step, evaluate(learner, images, cfg, step)))
            save(step)
            bar.set_postfix(test_acc=f"{rows[-1][1]:.3f}", loss=f"{loss.item():.3f}")
            log.info("few-shot %s seed %d step %d: test accuracy %.3f, train query accuracy "
                     "%.3f, meta-loss %.3f (%.1f steps/s)", cfg.variant, cfg.seed, step,
                     rows[-1][1], train_acc.item(), loss.item(),
                     (step - start) / (time.perf_counter() - t0))
    bar.close()
    lrs = {k: round(float(v.detach()), 6) for k, v in learner.inner_lrs().items()}
    meta = {"config": dataclasses.asdict(cfg), "width": width, "n_params": n_params,
            "train_classes": list(TRAIN_CLASSES), "test_classes": list(TEST_CLASSES),
            "dataset": "scikit-learn load_digits (8x8)", "final_inner_lrs": lrs,
            "wall_s": round(earlier_s + time.perf_counter() - t0, 2),
            "provenance": provenance()}
    write_csv(out_csv, ["step", "accuracy"], rows, {"accuracy": ".6f"})
    with atomic_path(config_path(out_csv)) as tmp:
        tmp.write_text(yaml.safe_dump(meta, sort_keys=False))
    checkpoint.path.unlink(missing_ok=True)
    return rows


def config_path(out_csv: Path) -> Path:
    """The YAML written beside a run's CSV: ``seed0.csv`` -> ``seed0.yaml``."""
    return Path(out_csv).with_suffix(".yaml")

