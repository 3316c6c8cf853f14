"""The config schema is generated from the dataclasses, and every config is checked by type and
range: by Snakemake before any job (the schema) and by the CLI (``parse_config``)."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO
from macaw import schema
from macaw.algos.macaw import MACAWConfig
from macaw.algos.mt_ft import MTFTConfig
from macaw.algos.pearl import PEARLConfig
from macaw.behaviour.trainer import BehaviourConfig
from macaw.fewshot import FewShotConfig
from macaw.meta_train import MetaTrainConfig
from macaw.online import OnlineConfig

CONFIGS = ("config/config.yaml", "config/smoke.yaml", "config/workstation.yaml", "config/paper.yaml")


def _merged(name: str) -> dict:
    """``name`` merged over config/config.yaml, as Snakemake's --configfile does."""
    def update(base, over):
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                update(base[key], value)
            else:
                base[key] = value
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update(config, yaml.safe_load((REPO / name).read_text()))
    return config


def test_the_checked_in_schema_is_the_generated_one():
    assert schema.SCHEMA_PATH.read_text() == schema.render(), \
        "workflow/schemas/config.schema.yaml is stale: run `python -m macaw.schema --write`"


def test_a_changed_field_changes_the_schema(monkeypatch):
    """The staleness check can fail: a new MACAW field appears in the generated schema."""
    before = schema.build_schema()
    macaw = before["definitions"]["meta_params"]["properties"]["macaw"]["properties"]
    assert macaw["width"] == {"description": "Hidden units per layer.", "minimum": 1,
                              "type": "integer"}
    assert macaw["wt_init"]["enum"] == ["authors", "uniform"]
    from macaw.algos import macaw as macaw_module
    original = macaw_module.MACAWConfig.__doc__
    monkeypatch.setattr(macaw_module.MACAWConfig, "__doc__", original + " Changed.")
    assert schema.render() != schema.SCHEMA_PATH.read_text()


@pytest.mark.parametrize("name", CONFIGS)
def test_every_scale_validates_and_the_schema_writes_no_defaults(name):
    config = _merged(name)
    before = copy.deepcopy(config)
    validate(config, str(schema.SCHEMA_PATH))
    assert config == before


@pytest.mark.parametrize("path,value,match", [
    (("meta_training", "params", "pearl", "kl_wieght"), 1.0, "kl_wieght"),
    (("meta_training", "params", "mt_ft", "value_lr"), "fast", "'fast' is not of type 'number'"),
    (("meta_training", "params", "macaw", "width"), 0, "0 is less than the minimum of 1"),
    (("meta_training", "method_params", "pearl", "steps"), "4", "'4' is not of type 'integer'"),
    (("online", "batch_size"), 0, "0 is less than the minimum of 1"),
    (("fewshot", "params", "ways"), 50, "50 is greater than the maximum of 20"),
])
def test_the_schema_refuses_a_bad_field_in_every_section(path, value, match):
    config = _merged("config/smoke.yaml")
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(Exception, match=match):
        validate(config, str(schema.SCHEMA_PATH))


@pytest.mark.parametrize("bad,match", [
    ({"steps": "4"}, "meta-training config: steps: input should be a valid integer, found '4'"),
    ({"eval_every": 0}, "eval_every: input should be greater than or equal to 1, found 0"),
    ({"steps": 4.0}, "steps: input should be a valid integer, found 4.0"),
    ({"inner_window": "great"}, "inner_window: input should be 'all', 'bad', 'medium' or 'good'"),
    ({"macaw": {"width": "4"}}, r"macaw\.width: input should be a valid integer"),
    ({"macaw": {"widht": 4}}, r"macaw\.widht: unexpected keyword argument"),
    ({"macaw": {"temperature": 0.0}}, r"macaw\.temperature: input should be greater than 0"),
    ({"method": "mt_ft", "mt_ft": {"value_lr": -1.0}},
     r"section 'mt_ft': value_lr: input should be greater than 0"),
    ({"method": "pearl", "pearl": {"gamma": 2.0}},
     r"section 'pearl': gamma: input should be less than or equal to 1"),
    ({"eval_unadapted": 1}, "eval_unadapted: input should be a valid boolean, found 1"),
])
def test_meta_training_config_errors_name_the_field_and_what_was_found(bad, match):
    with pytest.raises(ValueError, match=match):
        MetaTrainConfig.from_dict({"family": "cheetah-vel", **bad})


def test_configs_accept_their_own_defaults_and_json_lists_for_every_field():
    cfg = MetaTrainConfig.from_dict({"family": "cheetah-vel", "macaw": {"inner_value_lr": 1e-4,
                                                                        "adv_coef": 1}})
    assert cfg.macaw.inner_value_lr == 1e-4 and cfg.macaw.adv_coef == 1.0
    assert OnlineConfig.from_dict({"report_at": [0, 20_000, 200_000]}) == OnlineConfig()
    assert FewShotConfig.from_dict({}) == FewShotConfig()
    with pytest.raises(ValueError, match="few-shot config: variant: input should be 'wt'"):
        FewShotConfig.from_dict({"variant": "maml"})


def test_the_config_readme_documents_every_key_and_is_not_stale():
    text = (REPO / "config" / "README.md").read_text()
    assert text == schema.render_reference(text), \
        "config/README.md is stale: run `python -m macaw.schema --write`"
    for key in ("`families.<name>.tasks`", "`meta_training.family_params.<name>`",
                "| `outer_stride` |", "`meta_training.params.macaw` (MACAWConfig)",
                "| `adapt_steps` |", "| `eval_rollouts` |", "| `wt_init` |"):
        assert key in text, key


RENAMED_ERRORS = [
    (lambda: BehaviourConfig.from_dict("cheetah-vel", {"tasks": [0], "total_steps": 600}),
     "behaviour config of 'cheetah-vel': total_steps was renamed to steps (see config/README.md)"),
    (lambda: BehaviourConfig.from_dict("cheetah-vel", {"tasks": [0], "lr_critic": 1e-3}),
     "behaviour config of 'cheetah-vel': lr_critic was renamed to critic_lr "
     "(see config/README.md)"),
    (lambda: BehaviourConfig.from_dict("cheetah-vel", {"tasks": [0], "hidden": [32, 32]}),
     "behaviour config of 'cheetah-vel': hidden was renamed to width and n_hidden; "
     "hidden: [128, 128] is width: 128, n_hidden: 2 (see config/README.md)"),
    (lambda: MetaTrainConfig.from_dict({"family": "cheetah-vel", "method": "mt_ft",
                                        "mt_ft": {"finetune_steps": 0}}),
     "meta-training config, section 'mt_ft': finetune_steps was renamed to adapt_steps "
     "(see config/README.md)"),
    (lambda: MetaTrainConfig.from_dict({"family": "cheetah-vel", "method": "pearl",
                                        "pearl": {"q_lr": 1e-3}}),
     "meta-training config, section 'pearl': q_lr was renamed to critic_lr (see config/README.md)"),
    (lambda: MetaTrainConfig.from_dict({"family": "cheetah-vel",
                                        "macaw": {"finetune_policy_lr": 1e-3}}),
     "meta-training config: macaw.finetune_policy_lr was renamed to online_policy_lr "
     "(see config/README.md)"),
    (lambda: MetaTrainConfig.from_dict({"family": "cheetah-vel", "inner_quality": "bad"}),
     "meta-training config: inner_quality was renamed to inner_window (see config/README.md)"),
    (lambda: MetaTrainConfig.from_dict({"family": "cheetah-vel", "buffer_skip": 1}),
     "meta-training config: buffer_skip was renamed to outer_stride (see config/README.md)"),
    (lambda: MetaTrainConfig.from_dict({"family": "cheetah-vel",
                                        "macaw": {"value_target_polyak": 0.9}}),
     "meta-training config: macaw.value_target_polyak was renamed to value_target_tau, the new "
     "value's weight; value_target_polyak: 0.9 is value_target_tau: 0.1 (see config/README.md)"),
    (lambda: FewShotConfig.from_dict({"meta_batch": 4}),
     "few-shot config: meta_batch was renamed to tasks_per_batch (see config/README.md)"),
]


@pytest.mark.parametrize("build,message", RENAMED_ERRORS)
def test_an_old_field_name_is_one_line_naming_the_new_one(build, message):
    """Not the generic unknown-field error: the old name and its new one, on one line."""
    with pytest.raises(ValueError) as err:
        build()
    assert str(err.value) == message


def test_every_renamed_field_names_a_current_field_and_is_not_one():
    for cls in (BehaviourConfig, PEARLConfig, MTFTConfig, MACAWConfig, FewShotConfig,
                MetaTrainConfig):
        names = {f.name for f in dataclasses.fields(cls)}
        assert cls.RENAMED, cls
        for old, new in cls.RENAMED.items():
            assert old not in names, (cls, old)
            assert set(re.findall(r"^\w+|(?<= and )\w+", new)) <= names, (cls, new)


@pytest.mark.parametrize("path,old,new", [
    (("families", "cheetah-vel", "behaviour"), "total_steps", "steps"),
    (("meta_training", "params", "mt_ft"), "finetune_value_lr", "adapt_value_lr"),
    (("meta_training", "family_params", "ml45", "pearl"), "meta_batch", "tasks_per_batch"),
    (("fewshot", "params"), "hidden", "width"),
])
def test_the_schema_names_the_new_name_of_an_old_key(path, old, new):
    config = _merged("config/smoke.yaml")
    node = config
    for key in path:
        node = node.setdefault(key, {})
    node[old] = 1
    with pytest.raises(Exception, match=re.escape(f"renamed to {new} (see config/README.md)")):
        validate(config, str(schema.SCHEMA_PATH))
