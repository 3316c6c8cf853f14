"""The value loss on a meta-test adaptation batch after 1, 2, 3 value steps at the learned rate.

    python benchmarks/value_step_losses.py RUN_DIR TEST_BUFFER.h5 ...

The batch is the first one the run's last evaluation adapts on (the same draw as
``macaw test-time-steps``). Prints, per number of steps, each test task's Eq. 2 loss on that
batch: a step that overshoots raises it instead of lowering it.
"""

import sys
from pathlib import Path

import numpy as np

from macaw.algos.losses import value_loss
from macaw.algos.macaw import adapt
from macaw.evaluate import adaptation_batch
from macaw.meta_train import evaluation_seed, load_finished_run
from macaw.nets.networks import value_forward


def main(run_dir: str, buffers: list[str]) -> None:
    meta, learner, tasks = load_finished_run(Path(run_dir), [Path(p) for p in buffers])
    rng = np.random.default_rng(evaluation_seed(meta, meta.steps))
    batch = adaptation_batch(tasks, meta.eval_batch, rng)
    print("value steps, then the loss of test tasks", [t.task_id for t in tasks])
    for n in (1, 2, 3):      # (the inner steps need autograd: no torch.no_grad here)
        weights = adapt(learner, batch, n).value
        losses = value_loss(value_forward(weights, batch.observations), batch.mc_returns)
        print(n, " ".join(f"{v:.3g}" for v in losses.detach().tolist()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
