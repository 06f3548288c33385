"""deep_merge: Snakemake's config-file merge, without touching its arguments."""
from solopo.mappings import deep_merge


def test_nested_mappings_merge_and_other_values_replace():
    base = {"a": {"x": 1, "y": {"p": 1}}, "b": [1, 2], "c": {"k": 1}}
    over = {"a": {"y": {"q": 2}, "z": 3}, "b": [3], "c": None}
    assert deep_merge(base, over) == {"a": {"x": 1, "y": {"p": 1, "q": 2}, "z": 3}, "b": [3], "c": None}
    assert deep_merge(base, None) == base


def test_the_arguments_stay_as_they_were_and_share_nothing_with_the_result():
    base, over = {"a": {"x": [1]}}, {"a": {"y": [2]}}
    out = deep_merge(base, over)
    out["a"]["x"].append(9)
    out["a"]["y"].append(9)
    assert base == {"a": {"x": [1]}} and over == {"a": {"y": [2]}}
