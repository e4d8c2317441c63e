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
    assert [(s.name, s.hash_buckets) for s in outputs.split_config.splits] == [
        ("train", 70),
        ("validation", 15),
        ("eval", 15),
    ]
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


def _shard(folder, megabytes: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"part-{len(list(folder.iterdir()))}.tfrec").write_bytes(b"\0" * int(megabytes * 1e6))


def test_small_inputs_run_beam_in_memory_and_large_ones_on_worker_processes(tmp_path):
    from flowers.config import IN_MEMORY_BEAM_ARGS, LOCAL_BEAM_ARGS, PipelineConfig

    _shard(tmp_path / "span-1", 1.5)
    _shard(tmp_path / "span-2" / "train", 1.0)
    config = PipelineConfig().override({"data.data_root": str(tmp_path), "run.beam_multiprocessing_above_mb": 2})
    chosen, line = layout.choose_beam_mode(config)
    assert chosen.run.beam_args == LOCAL_BEAM_ARGS  # 2.5 MB in both spans
    assert line == "beam: multi-processing DirectRunner (2.5 MB of shards > run.beam_multiprocessing_above_mb=2)"
    # A window of the newest span reads 1 MB.
    chosen, line = layout.choose_beam_mode(config.override({"data.span_window": 1}))
    assert chosen.run.beam_args == IN_MEMORY_BEAM_ARGS
    assert line.startswith("beam: in-memory DirectRunner (1.0 MB of shards <= run.beam_multiprocessing_above_mb=2:")
    assert chosen.override({"data.span_window": 0}) == config.override({"run.beam_args": IN_MEMORY_BEAM_ARGS})


def test_beam_args_set_by_the_user_are_kept(tmp_path):
    from flowers.config import PipelineConfig

    _shard(tmp_path / "span-1", 0.1)
    dataflow = "--runner=DataflowRunner --project=p"
    config = PipelineConfig().override({"data.data_root": str(tmp_path), "run.beam_args": dataflow})
    chosen, line = layout.choose_beam_mode(config)
    assert chosen == config and line == "beam: --runner=DataflowRunner --project=p (run.beam_args as set)"
    remote = PipelineConfig().override({"data.data_root": "gs://bucket/flowers"})
    line = "beam: multi-processing DirectRunner (a remote data root: its size is not read)"
    assert layout.choose_beam_mode(remote) == (remote, line)


def test_the_bundled_sample_runs_in_memory_by_default():
    from flowers.config import IN_MEMORY_BEAM_ARGS, PipelineConfig

    chosen, _ = layout.choose_beam_mode(PipelineConfig())
    assert layout.input_mb(SAMPLE_DATA) < PipelineConfig().run.beam_multiprocessing_above_mb
    assert chosen.run.beam_args == IN_MEMORY_BEAM_ARGS


def test_a_span_folder_given_as_the_data_root_names_its_parent():
    with pytest.raises(FileNotFoundError, match=r"span-1 is a span folder; .*--data-root .*data/sample$"):
        layout.check_data_root(f"{SAMPLE_DATA}/span-1")
