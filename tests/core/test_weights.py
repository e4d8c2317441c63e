import pytest

from flowers import weights


@pytest.mark.parametrize("alpha, name", [(0.5, "0.5_224_no_top.h5"), (1.0, "1.0_224_no_top.tf_slim.h5")])
def test_bundled_weights_are_verified(alpha, name):
    assert weights.resolve("bundled", alpha).endswith(name)


def test_corrupt_weights_are_refused(tmp_path):
    bad = tmp_path / "w.h5"
    bad.write_bytes(b"truncated")
    with pytest.raises(weights.WeightsError, match="corrupt"):
        weights.verified(str(bad), weights.BUNDLED[0.5][1])


def test_unbundled_alpha_says_what_to_do():
    with pytest.raises(weights.WeightsError, match="weights=imagenet"):
        weights.resolve("bundled", 0.35)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(weights.WeightsError, match="nope.h5"):
        weights.resolve(str(tmp_path / "nope.h5"), 0.5)
