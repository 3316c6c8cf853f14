"""Where a behaviour lifetime's plateau starts, and how much of it comes after (the
composition of a lifetime, printed by ``macaw inspect-buffer``)."""

from __future__ import annotations


import numpy as np
import pytest

from macaw.data.windows import plateau_episode, post_plateau_share


def test_plateau_episode_by_hand():
    """Returns rise by 10 an episode from 0 (episode 0) to 100 (episode 10), then stay at
    100: the first 10 average 45, the last 10 100, so the threshold is 45 + 0.9 * 55 = 94.5.
    The 10-episode running mean ending at episode e is 100 minus a tenth of the gaps to 100
    in episodes e-9..e: at e = 17 (episodes 8 and 9 short by 20 and 10) 97; at e = 16 (7, 8
    and 9: 30 + 20 + 10) 94, below the threshold. So the plateau starts at episode 17."""
    r = np.concatenate([np.linspace(0, 100, 11), np.full(30, 100.0)])
    assert plateau_episode(r) == 17


@pytest.mark.parametrize("returns", [np.full(20, -5.0), np.linspace(10, 0, 20)])
def test_a_lifetime_that_does_not_improve_is_all_plateau(returns):
    assert plateau_episode(returns) == 0


def test_post_plateau_share_counts_transitions_from_the_plateau_episode():
    """40 episodes of 5 transitions, plateau at episode 17: 23 of 40 episodes."""
    r = np.concatenate([np.linspace(0, 100, 11), np.full(29, 100.0)])
    buffer = type("B", (), {"episode_returns": r, "episode_starts": np.arange(40) * 5,
                            "__len__": lambda self: 200})()
    share, episode = post_plateau_share(buffer)
    assert episode == 17 and share == pytest.approx(23 / 40)


def test_inspect_buffer_prints_the_lifetime_composition(tiny_buffers, capsys):
    """The share printed is the one computed from the file's episode returns and starts."""
    from macaw.cli import main
    from macaw.data import load_task_buffer

    path = tiny_buffers[3]
    share, episode = post_plateau_share(load_task_buffer(path))
    assert main(["inspect-buffer", str(path)]) == 0
    assert (f"  composition: {share:.0%} of the transitions after the plateau (from episode "
            f"{episode}, where the 10-episode mean return") in capsys.readouterr().out
