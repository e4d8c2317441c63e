from flowers.data import layout
from flowers.config import SAMPLE_DATA


def patterns(input_config):
    return {s.name: s.pattern for s in input_config.splits}


def test_flat_shards_get_a_4_to_1_hash_split(tmp_path):
    inputs, outputs = layout.example_gen_configs(str(tmp_path))
    assert patterns(inputs) == {"single_split": "*.tfrec"}
    assert [(s.name, s.hash_buckets) for s in outputs.split_config.splits] == [("train", 4), ("eval", 1)]


def test_spans_read_the_latest_span():
    inputs, outputs = layout.example_gen_configs(SAMPLE_DATA)
    assert patterns(inputs) == {"single_split": "span-{SPAN}/*.tfrec"}
    assert outputs is not None


def test_existing_split_folders_are_kept(tmp_path):
    for split in ("train", "eval"):
        (tmp_path / "span-3" / split).mkdir(parents=True)
    inputs, outputs = layout.example_gen_configs(str(tmp_path))
    assert patterns(inputs) == {"train": "span-{SPAN}/train/*.tfrec", "eval": "span-{SPAN}/eval/*.tfrec"}
    assert outputs is None


def test_data_root_without_shards_is_named(tmp_path):
    import pytest

    (tmp_path / "span-2").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \.tfrec shards match span-2/\*\.tfrec"):
        layout.check_data_root(str(tmp_path))
    layout.check_data_root(SAMPLE_DATA)
