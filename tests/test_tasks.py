"""The task descriptors: levels, the one level check, suffixes, crops and degradations."""

from __future__ import annotations

import numpy as np
import pytest

from scn_deploy.arch import preset_spec
from scn_deploy.degrade import add_gaussian_noise, bicubic_degrade, jpeg_compress
from scn_deploy.errors import ConfigError
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
