import os
import shutil

import pytest
import tensorflow as tf

from flowers import features
from flowers.data import convert, layout


def read_shards(paths):
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(paths)]


def test_round_trip_keeps_labs_format(photos_dir, tmp_path):
    wide = tf.io.encode_jpeg(tf.zeros([60, 150, 3], tf.uint8)).numpy()
    (tmp_path / "photos").mkdir()
    shutil.copytree(photos_dir, tmp_path / "photos", dirs_exist_ok=True)
    (tmp_path / "photos" / "tulips" / "wide.jpg").write_bytes(wide)

    result = convert.convert(str(tmp_path / "photos"), str(tmp_path / "out"), image_size=64, num_shards=3)

    assert result.converted == 16 and result.skipped == []
    assert len(result.shards) == 3 and all(p.endswith(layout.SHARD_SUFFIX) for p in result.shards)
    examples = read_shards(result.shards)
    assert len(examples) == 16
    for ex in examples:
        f = ex.features.feature
        index = f[features.CLASS_KEY].int64_list.value[0]
        assert f[features.LABEL_KEY].bytes_list.value[0].decode() == features.CLASS_NAMES[index]
        assert list(f[features.ONE_HOT_KEY].float_list.value) == features.one_hot(index)
        assert list(f[features.SIZE_KEY].int64_list.value) == [64, 64]
        image = tf.io.decode_jpeg(f[features.IMAGE_KEY].bytes_list.value[0])
        assert image.shape == (64, 64, 3)  # wide photo too: centre-cropped square
    counts = [sum(e.features.feature[features.CLASS_KEY].int64_list.value[0] == i for e in examples) for i in range(5)]
    assert counts == [3, 3, 3, 3, 4]
    assert os.listdir(tmp_path / "out") == ["span-1"]
    assert not [n for n in os.listdir(tmp_path / "out" / "span-1") if n.startswith(".staging")]


def test_bad_files_are_skipped_and_named(photos_dir, tmp_path):
    shutil.copytree(photos_dir, tmp_path / "photos")
    bad = tmp_path / "photos" / "roses" / "notes.jpg"
    bad.write_text("not an image")

    result = convert.convert(str(tmp_path / "photos"), str(tmp_path / "out"), image_size=32)

    assert result.skipped == [str(bad)]
    assert result.converted == 15
    assert len(read_shards(result.shards)) == 15


def test_unknown_class_folder_is_an_error(photos_dir, tmp_path):
    shutil.copytree(photos_dir, tmp_path / "photos")
    (tmp_path / "photos" / "orchids").mkdir()
    with pytest.raises(convert.ConversionError, match="unknown class folder.*orchids"):
        convert.convert(str(tmp_path / "photos"), str(tmp_path / "out"))


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(convert.ConversionError, match="no images found"):
        convert.convert(str(tmp_path / "photos"), str(tmp_path / "out"))


def test_empty_class_folder_is_an_error(photos_dir, tmp_path):
    shutil.copytree(photos_dir, tmp_path / "photos")
    shutil.rmtree(tmp_path / "photos" / "tulips")
    (tmp_path / "photos" / "tulips").mkdir()
    with pytest.raises(convert.ConversionError, match="tulips: class folder is empty"):
        convert.convert(str(tmp_path / "photos"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_sub_folder_in_a_class_folder_is_named(photos_dir, tmp_path):
    shutil.copytree(photos_dir, tmp_path / "photos")
    (tmp_path / "photos" / "daisy" / "more").mkdir()
    with pytest.raises(convert.ConversionError, match="daisy: holds sub-folder.*more"):
        convert.convert(str(tmp_path / "photos"), str(tmp_path / "out"), image_size=32)
    assert not (tmp_path / "out").exists()


def test_add_span_writes_the_next_span(photos_dir, tmp_path):
    root = tmp_path / "root"
    first = convert.add_span(photos_dir, str(root), image_size=32, num_shards=1)
    second = convert.add_span(photos_dir, str(root), image_size=32, num_shards=1)
    assert first.out_dir.endswith("span-1") and second.out_dir.endswith("span-2")
    assert layout.spans(str(root)) == [1, 2]


def test_convert_into_an_existing_root_points_to_add_span(photos_dir, tmp_path):
    convert.convert(photos_dir, str(tmp_path / "root"), image_size=32, num_shards=1)
    with pytest.raises(convert.ConversionError, match="flowers data add-span"):
        convert.convert(photos_dir, str(tmp_path / "root"), image_size=32)
    assert layout.spans(str(tmp_path / "root")) == [1]


def test_add_span_refuses_a_flat_root_with_the_command_that_moves_it(photos_dir, tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    (root / "flowers-00000-of-00001.tfrec").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"mkdir .*/span-1 && mv .*\*\.tfrec"):
        convert.add_span(photos_dir, str(root), image_size=32)
    with pytest.raises(FileNotFoundError, match="old flat layout"):
        layout.check_data_root(str(root))


def test_a_broken_link_is_named_before_anything_is_written(photos_dir, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(photos_dir, photos)
    os.symlink(tmp_path / "gone.jpg", photos / "roses" / "link.jpg")
    with pytest.raises(convert.ConversionError, match=r"roses: broken link\(s\) link.jpg point at nothing"):
        convert.convert(str(photos), str(tmp_path / "root"))
    assert not (tmp_path / "root").exists()


def test_a_sample_needs_the_credits_and_a_new_folder(photos_dir, tmp_path):
    from flowers.data import sample

    with pytest.raises(convert.ConversionError, match=r"no LICENSE.txt with the photographers' credits"):
        sample.make_sample(photos_dir, str(tmp_path / "small"), 1)
    assert not (tmp_path / "small").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    photos = tmp_path / "photos"
    shutil.copytree(photos_dir, photos)
    (photos / "LICENSE.txt").write_text("credits\n")
    with pytest.raises(convert.ConversionError, match="used: already exists and is not empty; choose a new folder$"):
        sample.make_sample(str(photos), str(tmp_path / "used"), 1)


def test_a_sample_respects_per_class_or_says_why_not(photos_dir, tmp_path):
    """photos_dir has 3 photos per class: asking for 5 writes nothing and names the counts."""
    from flowers.data import sample

    photos = tmp_path / "photos"
    shutil.copytree(photos_dir, photos)
    (photos / "LICENSE.txt").write_text("credits\n")
    with pytest.raises(
        convert.ConversionError, match=r"fewer photos than --per-class 5 \(daisy 3, .*\); pass --per-class 3"
    ):
        sample.make_sample(str(photos), str(tmp_path / "small"), 5)
    assert not (tmp_path / "small").exists()
