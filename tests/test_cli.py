"""The CLI: subcommands in pipeline order, config fields listed in --help from the dataclasses,
and --set NAME=VALUE as a second way (beside --params JSON) to set them."""

from __future__ import annotations

import dataclasses

import pytest

from macaw import cli


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_subcommands_are_listed_in_pipeline_order(capsys):
    out = _help(capsys)
    order = ["train-behaviour", "export-buffer", "make-split", "meta-train", "online-finetune",
             "fewshot", "plot-fig8", "summary", "table1"]
    positions = [out.index(f"\n    {name}") for name in order]
    assert positions == sorted(positions)


def test_meta_train_help_lists_every_field_with_type_range_and_default(capsys):
    from macaw.algos.macaw import MACAWConfig
    from macaw.meta_train import MetaTrainConfig

    out = _help(capsys, "meta-train")
    assert "  steps (integer >= 1; default 10000)\n      Meta-training steps." in out
    assert "  inner_window (one of all, bad, medium, good; default 'all')" in out
    assert "  macaw.value_target_tau (number in (0, 1]; default 0.1)" in out
    assert "  mt_ft.adapt_steps (integer >= 0; default 20)" in out
    for f in (f.name for f in dataclasses.fields(MetaTrainConfig)):
        if f not in ("family", "method", "seed", "macaw", "pearl", "mt_ft"):
            assert f"\n  {f} (" in out, f
    for f in (f.name for f in dataclasses.fields(MACAWConfig)):
        assert f"\n  macaw.{f} (" in out, f


def test_set_applies_over_params_with_dotted_sections_and_json_or_yaml_values():
    args = cli.build_parser().parse_args([
        "meta-train", "--family", "cheetah-vel", "--split", "s.json", "--buffers-dir", "b",
        "--run-dir", "r", "--params", '{"steps": 5, "macaw": {"latent": 8}}',
        "--set", "steps=7", "--set", "macaw.width=64", "--set", "macaw.inner_lr=1e-4",
        "--set", "inner_window=good", "--set", "eval_unadapted=false", "--set", "pearl.latent=3"])
    assert cli._params(args) == {"steps": 7, "macaw": {"latent": 8, "width": 64,
                                                       "inner_lr": 1e-4},
                                 "inner_window": "good", "eval_unadapted": False,
                                 "pearl": {"latent": 3}}
    assert args.params == {"steps": 5, "macaw": {"latent": 8}}     # --params itself untouched


def test_a_malformed_set_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["fewshot", "--variant", "wt", "--out", "x.csv",
                                       "--set", "steps"])
    assert exc.value.code == 2
    assert "expected NAME=VALUE, got 'steps'" in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("steps=-5", "steps: input should be greater than or equal to 1, found -5"),
    ("total_steps=600", "total_steps was renamed to steps (see config/README.md)"),
])
def test_a_bad_set_is_one_clear_line_and_writes_nothing(tmp_path, capsys, setting, message):
    """A value out of range, or a field's old name, fails in one line naming the config."""
    code = cli.main(["train-behaviour", "--family", "cheetah-vel", "--tasks", "0",
                     "--lifetime", str(tmp_path / "lifetime.h5"),
                     "--policy", str(tmp_path / "policy.pt"), "--set", setting])
    assert code == 2
    err = capsys.readouterr().err
    assert f"behaviour config of 'cheetah-vel': {message}" in err
    assert "Traceback" not in err and not list(tmp_path.iterdir())


def test_every_subcommand_has_an_example_that_parses():
    """Each subcommand's --help ends with an example; every example is a valid command line."""
    import shlex

    from macaw.cli import EXAMPLES, build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(EXAMPLES) == set(commands)
    for name, example in EXAMPLES.items():
        argv = shlex.split(example.replace("\\\n", " "))
        assert argv[:2] == ["macaw", name]
        assert parser.parse_args(argv[1:]).command == name
        assert "example:\n  macaw " + name in commands[name].format_help()


def test_every_run_list_has_one_shape_and_a_bad_seed_is_one_line(tmp_path):
    """Every --run ends LABEL SEED PATH (table1 included); a SEED that is not a non-negative
    integer, or a seed given twice to table1, fails naming the run, before anything is read."""
    from macaw.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    shapes = {name: next(a for a in p._actions if a.dest == "run").metavar
              for name, p in commands.items() if any(a.dest == "run" for a in p._actions)}
    assert set(shapes) == {"plot-curves", "plot-sparsity", "plot-diagnostics", "plot-fig6",
                           "summary", "table1"}
    for name, metavar in shapes.items():
        assert metavar[-3:-1] == ("LABEL", "SEED"), (name, metavar)
    csv = str(tmp_path / "online.csv")
    with pytest.raises(SystemExit, match=r"--run 'MACAW': SEED must be a non-negative integer, "
                                         r"found 'x'"):
        cli.main(["table1", "--run", "MACAW", "x", csv, "--csv", csv, "--md", csv])
    with pytest.raises(SystemExit, match=r"--run 'MACAW' seed 0 given twice"):
        cli.main(["table1", "--run", "MACAW", "0", csv, "--run", "MACAW", "0", csv,
                  "--csv", csv, "--md", csv])
    assert not list(tmp_path.iterdir())
