"""The task descriptors: levels, the one level check, suffixes, crops and degradations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scn_deploy.arch import preset_spec
from scn_deploy.arch.config import ModelSpec
from scn_deploy.degrade import add_gaussian_noise, bicubic_degrade, jpeg_compress, modcrop
from scn_deploy.errors import ConfigError
from scn_deploy.metrics import y_uint8
from scn_deploy.tasks import DEBLOCKING, DENOISING, SUPER_RESOLUTION, TASKS, task_named


def test_registry_and_names() -> None:
    assert set(TASKS) == {"sr", "denoise", "deblock"}
    assert task_named("denoise") is DENOISING
    with pytest.raises(ConfigError, match="task must be one of"):
        task_named("inpaint")
    assert [t.command for t in TASKS.values()] == ["upscale", "denoise", "deblock"]
    assert DENOISING.flag == "--sigma" and DEBLOCKING.flag == "--quality"
    with pytest.raises(ConfigError):
        _ = SUPER_RESOLUTION.flag
    assert SUPER_RESOLUTION.level_key == "scale" and DEBLOCKING.level_key == "quality"


def test_suffixes_crops_and_condition_values() -> None:
    assert SUPER_RESOLUTION.output_suffix(4) == "_x4"
    assert SUPER_RESOLUTION.output_suffix(4, 2.5) == "_x2.5"
    assert DENOISING.output_suffix() == "_denoised" and DEBLOCKING.output_suffix() == "_deblocked"
    assert SUPER_RESOLUTION.eval_crop(3) == 3 and DENOISING.eval_crop(3) == 0
    assert DENOISING.condition_value(51) == pytest.approx(0.2)
    assert DEBLOCKING.condition_value(10) == pytest.approx(0.9)
    with pytest.raises(ConfigError):
        SUPER_RESOLUTION.condition_value(2)


def test_pick_and_draw_levels() -> None:
    assert DENOISING.pick_level(None, (0, 75)) == 25 and DENOISING.pick_level(15, None) == 15
    assert DENOISING.pick_level(None, (30, 60)) == 45
    assert DEBLOCKING.pick_level(None, (10, 90)) == 20
    assert DEBLOCKING.pick_level(None, (31, 40)) == 36  # middle, rounded: a JPEG quality
    rng = np.random.default_rng(0)
    qualities = {DEBLOCKING.draw_level(rng, (10, 12)) for _ in range(200)}
    assert qualities == {10.0, 11.0, 12.0}
    sigmas = [DENOISING.draw_level(rng, (0, 75)) for _ in range(200)]
    assert all(0 <= s <= 75 for s in sigmas) and len(set(sigmas)) == 200


def test_the_one_level_check() -> None:
    blind = preset_spec("tiny", task="denoise", level_range=(0.0, 75.0))
    fixed = preset_spec("tiny", task="deblock", quality=20)
    assert (
        DENOISING.check_level(blind, 25).level == 25
        and not DENOISING.check_level(blind, 25).problem
    )
    missing = DENOISING.check_level(blind, None)
    assert missing.problem == "missing" and "--sigma (0-255)" in missing.message
    outside = DENOISING.check_level(blind, 90, source="denoise-gray")
    assert outside.problem == "outside" and outside.level == 90
    assert "outside the range denoise-gray was trained for (0-75)" in outside.message
    assert DEBLOCKING.check_level(fixed, 20).problem is None
    assert DEBLOCKING.check_level(fixed, None).level is None  # a fixed model needs no level
    wrong = DEBLOCKING.check_level(fixed, 30)
    assert wrong.problem == "fixed" and "fixed quality of 20" in wrong.message
    assert blind.describe() == "denoising, sigma 0-75 (conditioned)"
    assert fixed.describe() == "JPEG deblocking, quality 20"


def test_degradations_are_the_published_protocols() -> None:
    rng = np.random.default_rng(3)
    clean = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(SUPER_RESOLUTION.degrade(clean, 3), bicubic_degrade(clean, 3))
    np.testing.assert_array_equal(DEBLOCKING.degrade(clean, 30), jpeg_compress(clean, 30))
    noisy = DENOISING.degrade(clean, 25, 7)
    assert noisy.dtype == np.float64 and noisy.min() < 0  # not clipped, not quantised
    np.testing.assert_array_equal(noisy, add_gaussian_noise(clean / 255.0, 25, rng=7))
    gray = clean[..., :1]
    assert DEBLOCKING.degrade(gray, 30).shape == gray.shape
    with pytest.raises(ValueError, match="uint8"):
        DENOISING.degrade(clean.astype(np.float32), 25)


def test_a_task_is_compared_with_tasks_not_names() -> None:
    spec = preset_spec("tiny", task="deblock", quality=20)
    assert spec.task is DEBLOCKING and spec.task != DENOISING and str(spec.task) == "deblock"
    with pytest.raises(TypeError, match="not with the name 'deblock'"):
        _ = spec.task == "deblock"
    with pytest.raises(TypeError):
        _ = "sr" != SUPER_RESOLUTION  # noqa: SIM300  (the name on the left, too)
    # Model files and ONNX metadata keep the name: the spec round-trips through JSON.
    data = json.loads(spec.to_json())
    assert data["task"] == "deblock"
    assert ModelSpec.from_dict(data).task is DEBLOCKING
    assert task_named(DENOISING) is DENOISING


def test_eval_levels_are_checked_by_the_task() -> None:
    assert SUPER_RESOLUTION.level_problem(2) is None and DENOISING.level_problem(0) is None
    assert SUPER_RESOLUTION.level_problem(1) == "--scale must be an integer >= 2, got 1"
    assert SUPER_RESOLUTION.level_problem(True) is not None  # a bool is not a scale
    assert DENOISING.level_problem(300.0) is None  # no upper bound for the noise
    assert DENOISING.level_problem(float("nan")).startswith("--sigma must be a number >= 0")
    assert DEBLOCKING.level_problem(101) == "--quality must be an integer in 1..100, got 101"
    assert DEBLOCKING.level_problem(50.0) is not None  # a quality is a whole number
    texts = [t.level_text(v) for t, v in ((SUPER_RESOLUTION, 3), (DENOISING, 25), (DEBLOCKING, 10))]
    assert texts == ["x3", "sigma 25", "quality 10"]
    assert SUPER_RESOLUTION.model_level(4) is None and DENOISING.model_level(15) == 15.0


def test_eval_pairs_are_the_published_protocols() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (25, 31, 3), dtype=np.uint8)
    hr, lr = SUPER_RESOLUTION.eval_pair(image, 3)
    np.testing.assert_array_equal(hr, modcrop(image, 3))
    np.testing.assert_array_equal(lr, bicubic_degrade(modcrop(image, 3), 3))
    clean, noisy = DENOISING.eval_pair(image, 25, seed=4)
    np.testing.assert_array_equal(clean, image)
    assert noisy.dtype == np.float64
    np.testing.assert_array_equal(noisy, add_gaussian_noise(image / 255.0, 25, rng=4))
    y, coded_y = DEBLOCKING.eval_pair(image, 20)
    np.testing.assert_array_equal(y, y_uint8(image))
    np.testing.assert_array_equal(coded_y, jpeg_compress(y_uint8(image), 20))
    rgb, coded_rgb = DEBLOCKING.eval_pair(image, 20, colour=True)
    np.testing.assert_array_equal(rgb, image)
    assert coded_rgb.shape == image.shape
    assert not DEBLOCKING.colour_scored() and DEBLOCKING.colour_scored(colour=True)
    assert SUPER_RESOLUTION.colour_scored() and DENOISING.colour_scored()


def test_given_degraded_inputs_are_checked_and_converted() -> None:
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    hr = SUPER_RESOLUTION.eval_reference(image, 3)
    lr = SUPER_RESOLUTION.given_input(bicubic_degrade(hr, 3), hr, 3)
    assert lr.shape == (8, 10, 3) and lr.dtype == np.uint8
    with pytest.raises(ValueError, match=r"size 30x24 does not match .* \(expected 10x8\)"):
        SUPER_RESOLUTION.given_input(image, hr, 3)
    with pytest.raises(ValueError, match="a gray input for a colour reference"):
        SUPER_RESOLUTION.given_input(lr[..., 0], hr, 3)
    noisy = DENOISING.given_input(image, image, 25)
    assert noisy.dtype == np.float64 and noisy.max() <= 1.0
    np.testing.assert_array_equal(noisy, image / 255.0)
    # The Y protocol: a colour file is reduced to the Y the reference is scored on.
    y = DEBLOCKING.given_input(image, DEBLOCKING.eval_reference(image, 20), 20)
    np.testing.assert_array_equal(y, y_uint8(image))
