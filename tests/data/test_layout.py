import pytest

from flowers.config import SAMPLE_DATA
from flowers.data import layout


def configs(root, span=0):
    folder = layout.span_dir(str(root), span or max(layout.spans(str(root)), default=1))
    return layout.example_gen_configs(layout.is_presplit(folder), 15, 15, span)


def patterns(input_config):
    return {s.name: s.pattern for s in input_config.splits}


def test_spans_are_split_three_ways_by_hash():
    inputs, outputs, ranged = configs(SAMPLE_DATA)
    assert patterns(inputs) == {"single_split": "span-{SPAN}/*.tfrec"}
    assert [(s.name, s.hash_buckets) for s in outputs.split_config.splits] == [("train", 70), ("validation", 15), ("eval", 15)]
    assert ranged is None  # the newest span, resolved at run time


def test_a_chosen_span_is_a_static_range(tmp_path):
    (tmp_path / "span-3").mkdir()
    _, _, ranged = configs(tmp_path, span=3)
    assert (ranged.static_range.start_span_number, ranged.static_range.end_span_number) == (3, 3)


def test_existing_split_folders_are_kept(tmp_path):
    for split in ("train", "eval"):
        (tmp_path / "span-3" / split).mkdir(parents=True)
    inputs, outputs, _ = configs(tmp_path)
    assert patterns(inputs) == {"train": "span-{SPAN}/train/*.tfrec", "eval": "span-{SPAN}/eval/*.tfrec"}
    assert outputs is None


def test_data_root_without_shards_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no span-N folders"):
        layout.check_data_root(str(tmp_path))
    (tmp_path / "span-2").mkdir()
    with pytest.raises(FileNotFoundError, match=r"span-2: no \.tfrec shards match \*\.tfrec"):
        layout.check_data_root(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no span-7"):
        layout.check_data_root(str(tmp_path), span=7)
    layout.check_data_root(SAMPLE_DATA)
