"""How config files compose (macaw/workflow_config.py): `families` is replaced, not merged."""

from __future__ import annotations

import pytest
import yaml

from macaw.workflow_config import replace_sections


def write(path, values):
    path.write_text(yaml.safe_dump(values))
    return path


MERGED = {  # what Snakemake's merge of the default and the two files below gives
    "families": {"cheetah-vel": {"tasks": "all"}, "ml45": {"tasks": [0]},
                 "walker-params": {"tasks": [0, 2]}},
    "meta_training": {"params": {"steps": 10}},
}


def test_the_last_file_with_families_lists_every_family_built(tmp_path):
    first = write(tmp_path / "a.yaml", {"families": {"walker-params": {"tasks": [0, 2]}}})
    other = write(tmp_path / "b.yaml", {"meta_training": {"params": {"steps": 10}}})
    config = replace_sections({**MERGED}, [first, other])
    assert config["families"] == {"walker-params": {"tasks": [0, 2]}}
    assert config["meta_training"] == {"params": {"steps": 10}}      # other sections merge


def test_without_a_families_section_the_merged_config_stays(tmp_path):
    other = write(tmp_path / "b.yaml", {"meta_training": {"params": {"steps": 10}}})
    assert replace_sections({**MERGED}, [other])["families"] == MERGED["families"]
    assert replace_sections({**MERGED}, [])["families"] == MERGED["families"]


def test_command_line_config_still_overrides_a_field(tmp_path):
    first = write(tmp_path / "a.yaml", {"families": {"walker-params": {"tasks": [0, 2],
                                                                       "splits": ["standard"]}}})
    config = replace_sections({**MERGED}, [first],
                              {"families": {"walker-params": {"tasks": [0, 5]}}})
    assert config["families"] == {"walker-params": {"tasks": [0, 5], "splits": ["standard"]}}


@pytest.mark.parametrize("text, message", [("families: [a, b]\n", "families: expected a mapping"),
                                           ("families: {a: [\n", "not valid YAML"),
                                           ("- a\n", "expected a mapping of config sections")])
def test_a_bad_file_is_named_in_the_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        replace_sections({**MERGED}, [path])
    assert str(path) in str(error.value)
