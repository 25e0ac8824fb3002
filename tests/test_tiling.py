"""Tiled inference: the plan, the measured receptive field, the receptive-field store, and
seamless results on photos.

The runtime is tested as shipped: the models are the zoo's fast models through their ONNX
exports (`zoo_engine`: ONNX Runtime, fp32), so this runs without torch. Only the test that
builds a fresh network (a ratio-2/3 pyramid no zoo model has) needs torch.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from scn_deploy.arch import preset_spec
from scn_deploy.arch.facts import (
    activation_bytes_per_pixel,
    aligned_levels,
    pyramid_alignment,
    receptive_field_bound,
)
from scn_deploy.degrade import add_gaussian_noise, jpeg_compress
from scn_deploy.metrics import psnr
from scn_deploy.restore import RestoreOptions, Restorer
from scn_deploy.tiling import (
    ReceptiveField,
    TilePlanner,
    auto_tile,
    default_overlap,
    measure_receptive_field,
    receptive_field,
    run_tiled,
)
from scn_deploy.tiling.receptive_fields import (
    receptive_field_key,
    receptive_field_store,
    store_receptive_field,
    stored_receptive_field,
)

#: The engines these tests run: colour SR at full resolution, and the gray restoration
#: models, whose body runs at half resolution (space_to_depth 2, alignment 8).
MODELS = {"sr": "sr-x2-fast", "denoise": "denoise-gray-fast", "deblock": "deblock-gray-fast"}
LEVELS = {"sr": None, "denoise": 25.0, "deblock": 20.0}


@pytest.fixture(scope="module")
def engines(zoo_engine) -> dict[str, object]:
    return {task: zoo_engine(name) for task, name in MODELS.items()}


def _nchw(image: np.ndarray) -> np.ndarray:
    """HxW or HxWxC uint8 -> (1, C, H, W) float32 in [0, 1]."""
    planes = image[..., None] if image.ndim == 2 else image
    return np.ascontiguousarray(planes.transpose(2, 0, 1)[None], np.float32) / 255


def _degraded(task: str, clean: np.ndarray) -> np.ndarray:
    """The input a model of `task` restores: the photo as it is (SR), with Gaussian noise of
    sigma 25 (denoise) or JPEG-compressed at quality 20 (deblock), uint8."""
    if task == "denoise":
        noisy = add_gaussian_noise(clean.astype(np.float32) / 255, 25.0, rng=0)
        return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)
    if task == "deblock":
        return jpeg_compress(clean, 20)
    return clean


# -- the plan ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap", "align"),
    [(300, 451, 64, 20, 4), (7, 5, 4, 3, 1), (130, 129, 64, 0, 8), (64, 64, 64, 8, 4)],
)
def test_plan_partitions_the_image(h: int, w: int, tile: int, overlap: int, align: int) -> None:
    plan = TilePlanner(h, w, tile=tile, overlap=overlap, align=align)
    cover = np.zeros((h, w), int)
    shapes = set()
    for t in plan:
        cover[t.core_out()] += 1
        y, x = t.y, t.x
        # windows hold core + overlap (rounded to the alignment), clipped, aligned at the origin
        assert y.lo <= max(0, y.start - plan.overlap) and y.hi >= min(h, y.stop + plan.overlap)
        assert x.lo <= max(0, x.start - plan.overlap) and x.hi >= min(w, x.stop + plan.overlap)
        assert y.lo % align == 0 and x.lo % align == 0
        assert (y.hi - y.lo) % align == 0 or y.hi == h
        assert (x.hi - x.lo) % align == 0 or x.hi == w
        # one window shape per image once padded to the alignment (border windows take
        # their context from the inner side)
        shapes.add((-(-(y.hi - y.lo) // align) * align, -(-(x.hi - x.lo) // align) * align))
    assert (cover == 1).all()
    assert len(shapes) == 1
    assert plan.overlap % align == 0 and plan.overlap >= overlap


def test_plan_whole_image_and_errors() -> None:
    assert len(TilePlanner(100, 80, tile=0, overlap=10)) == 1
    assert len(TilePlanner(100, 80, tile=128, overlap=10)) == 1
    assert TilePlanner(100, 80, tile=0).describe() == "whole image"
    assert TilePlanner(100, 80, tile=(48, 0), overlap=8, align=4).describe() == (
        "3x1 tiles of 36x80 px, overlap 8 px"
    )
    with pytest.raises(Exception, match="empty"):
        TilePlanner(0, 10, tile=4)
    with pytest.raises(Exception, match=">= 0"):
        TilePlanner(10, 10, tile=4, overlap=-1)


def test_alignment_and_bounds_follow_the_config() -> None:
    arch = preset_spec("tiny", task="sr", num_scales=3).arch
    assert pyramid_alignment(arch, 3) == 4
    assert pyramid_alignment(arch, 1) == 1
    assert pyramid_alignment(arch.replace(scale_ratio=2 / 3), 3) == 9
    # tiny: 2 blocks, k=1 -> at most 3 levels reach the output, whatever --scales says
    assert pyramid_alignment(arch, 6) == 4
    assert receptive_field_bound(arch, 3) > receptive_field_bound(arch, 1)
    assert activation_bytes_per_pixel(arch, 3, fp16=True) == activation_bytes_per_pixel(arch, 3) / 2
    # space_to_depth 2: the pyramid starts at half resolution, so windows align to twice the
    # factor, the receptive field doubles and the body's activations per pixel shrink.
    full = preset_spec("tiny", task="denoise", num_scales=3).arch
    half = full.replace(space_to_depth=2)
    assert pyramid_alignment(half, 3) == 2 * pyramid_alignment(full, 3) == 8
    assert aligned_levels(half, 3) == aligned_levels(full, 3) == 3
    assert receptive_field_bound(half, 3) == 2 * receptive_field_bound(full, 3)
    assert activation_bytes_per_pixel(half, 3) < activation_bytes_per_pixel(full, 3) / 2


def test_alignment_is_capped_for_deep_pyramids() -> None:
    """Ratio 2/3 with 8-9 scales would need 2,187 / 6,561 px windows; capped at 729 (3**6)."""
    arch = preset_spec("small", task="sr", num_scales=4, scale_ratio=2 / 3).arch
    assert [pyramid_alignment(arch, n) for n in (4, 7, 8, 9)] == [27, 729, 729, 729]
    assert [aligned_levels(arch, n) for n in (4, 7, 8, 9)] == [4, 7, 7, 7]
    half = preset_spec("small", task="sr", num_scales=4).arch
    assert pyramid_alignment(half, 9) == 256 and aligned_levels(half, 9) == 9
    assert pyramid_alignment(arch, 9, limit=100) == 81 and pyramid_alignment(arch, 9, limit=1) == 1


def _recording(eng, monkeypatch) -> list[tuple[int, ...]]:
    """The input shapes of every forward pass `eng` makes from now on."""
    seen: list[tuple[int, ...]] = []
    infer = eng.infer
    monkeypatch.setattr(eng, "infer", lambda x, level=None: seen.append(x.shape) or infer(x, level))
    return seen


def infer_unrecorded(eng, x: np.ndarray) -> np.ndarray:
    """The engine's own forward pass, past a `_recording` spy."""
    return type(eng).infer(eng, x)


def test_whole_image_is_padded_to_the_alignment_and_cropped(engines, monkeypatch) -> None:
    """An image of any size runs padded to the pyramid alignment (4 for sr-x2-fast; 2 once the
    cap is lowered) and comes back at exactly scale x its size."""
    eng = engines["sr"]
    x = _nchw(data.coffee()[:101, :99])
    seen = _recording(eng, monkeypatch)
    exact = run_tiled(eng, x, tile=0)
    monkeypatch.setattr("scn_deploy.arch.facts.MAX_ALIGNMENT", 2)
    capped = run_tiled(eng, x, tile=0)
    assert [s[-2:] for s in seen] == [(104, 100), (102, 100)]
    assert exact.shape == capped.shape == (1, 3, 202, 198)
    # the padding is a mirror of the border, cropped from the output
    padded = np.pad(x, ((0, 0), (0, 0), (0, 3), (0, 1)), mode="symmetric")
    assert np.abs(exact - infer_unrecorded(eng, padded)[..., :202, :198]).max() < 1e-5


def test_deep_pyramid_whole_image_is_padded_to_the_capped_alignment(
    tmp_path: Path, monkeypatch
) -> None:
    torch = pytest.importorskip("torch")
    from scn_deploy.arch.scn import build_network
    from scn_deploy.engines import load_engine
    from scn_deploy.modelfile import save_model

    spec = preset_spec("tiny", task="sr", scale=2, num_scales=3, scale_ratio=2 / 3)
    torch.manual_seed(0)
    path = save_model(tmp_path / "r23.safetensors", build_network(spec.arch).eval(), spec)
    eng = load_engine(path)
    x = _nchw(data.coffee()[:100, :100])
    seen = _recording(eng, monkeypatch)
    exact = run_tiled(eng, x, tile=0)
    monkeypatch.setattr("scn_deploy.arch.facts.MAX_ALIGNMENT", 3)
    capped = run_tiled(eng, x, tile=0)
    assert [s[-2:] for s in seen] == [(108, 108), (102, 102)]  # 9- then 3-px alignment
    assert exact.shape == capped.shape == (1, 3, 200, 200)


def test_auto_tile_fits_the_budget() -> None:
    spec = preset_spec("tiny", task="denoise")
    per_px = activation_bytes_per_pixel(spec.arch, 3)
    assert auto_tile(spec, 3, 100, 100, overlap=20, memory_budget=int(per_px * 1e4) + 1) == 0
    budget = int(per_px * 256 * 256)
    tile = auto_tile(spec, 3, 4000, 6000, overlap=20, memory_budget=budget)
    assert isinstance(tile, tuple) and all(side % 4 == 0 for side in tile)
    plan = TilePlanner(4000, 6000, tile=tile, overlap=20, align=4)
    windows = [(t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in plan]
    assert max(windows) * per_px <= budget
    # fewer computed pixels than the largest square tile that fits (the old choice)
    square = (int((budget / per_px) ** 0.5) - 40) // 4 * 4
    squares = TilePlanner(4000, 6000, tile=square, overlap=20, align=4)
    assert sum(windows) <= sum((t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in squares)
    calls = []
    auto_tile(spec, 3, 10, 10, overlap=lambda: calls.append(1) or 8, memory_budget=budget)
    assert not calls  # the overlap is only asked for when tiling is needed


def test_auto_tile_computes_the_fewest_pixels_that_fit() -> None:
    """Of every plan whose windows fit (squares, strips, rectangles), the chosen one computes
    the fewest window pixels: overlap is extra work, so few large windows win."""
    spec = preset_spec("tiny", task="denoise")
    per_px = activation_bytes_per_pixel(spec.arch, 3)
    budget = int(per_px * 1.2e6)

    def cost(tile) -> tuple[int, int]:
        plan = TilePlanner(1500, 2000, tile=tile, overlap=44, align=4)
        areas = [(t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in plan]
        return sum(areas), max(areas)

    chosen, largest = cost(auto_tile(spec, 3, 1500, 2000, overlap=44, memory_budget=budget))
    assert largest * per_px <= budget
    others = [(h, w) for h in (0, *range(200, 1500, 100)) for w in (0, *range(200, 2000, 100))]
    fitting = [c for c in map(cost, others) if c[1] * per_px <= budget]
    assert fitting and chosen <= min(total for total, _ in fitting)
    assert chosen < 1.11 * 1500 * 2000  # 2 x 2 windows of 794 x 1044 here


def test_auto_tile_weighs_overlap_against_slower_large_windows() -> None:
    """An engine whose large windows run slower per pixel gets smaller windows when their
    overlap costs less than the slowdown; a flat cost changes nothing."""
    spec = preset_spec("tiny", task="denoise")
    per_px = activation_bytes_per_pixel(spec.arch, 3)
    budget = int(per_px * 1.2e6)
    plain = auto_tile(spec, 3, 1500, 2000, overlap=24, memory_budget=budget)
    flat = auto_tile(
        spec, 3, 1500, 2000, overlap=24, memory_budget=budget, window_cost=lambda p: 1.0
    )
    assert flat == plain
    assert auto_tile(spec, 3, 400, 400, overlap=24, memory_budget=budget) == 0

    def cliff(pixels: int) -> float:  # twice the time per pixel above 200k pixels
        return 1.0 if pixels <= 200_000 else 2.0

    def windows(tile) -> list[int]:
        plan = TilePlanner(1500, 2000, tile=tile, overlap=24, align=4)
        return [(t.y.hi - t.y.lo) * (t.x.hi - t.x.lo) for t in plan]

    small = auto_tile(spec, 3, 1500, 2000, overlap=24, memory_budget=budget, window_cost=cliff)
    assert max(windows(small)) <= 200_000 < max(windows(plain))
    assert sum(windows(small)) < 2 * sum(windows(plain))  # the overlap it pays is < 2x
    # an image that fits whole is still cut when that is cheaper, and kept whole when not
    assert auto_tile(spec, 3, 600, 600, overlap=24, memory_budget=budget, window_cost=cliff) != 0
    assert auto_tile(spec, 3, 440, 440, overlap=24, memory_budget=budget, window_cost=cliff) == 0

    def mild(pixels: int) -> float:  # a 1% slowdown never pays for the overlap
        return 1.0 if pixels <= 200_000 else 1.01

    assert auto_tile(spec, 3, 600, 600, overlap=24, memory_budget=budget, window_cost=mild) == 0


def test_auto_tile_of_a_restorer_bounds_every_forward_pass(engines, monkeypatch) -> None:
    """`tile="auto"` with a small memory budget cuts the image so that no forward pass holds
    more activations than the budget, and the result is the whole-image one."""
    eng = engines["sr"]
    image = data.astronaut()[:96, :160]
    per_px = activation_bytes_per_pixel(eng.spec.arch, eng.num_scales)
    budget = int(per_px * 64 * 96)
    whole = Restorer(eng).restore(image, dtype=np.uint8)
    default_overlap(eng)  # measured before the spy: the probe is one pass on a larger canvas
    seen = _recording(eng, monkeypatch)
    tiled = Restorer(eng, RestoreOptions(tile="auto", memory_budget=budget)).restore(
        image, dtype=np.uint8
    )
    assert len(seen) > 1 and max(n * h * w for n, _, h, w in seen) * per_px <= budget
    assert np.abs(whole.astype(int) - tiled).max() <= 1


def test_rectangular_tiles_restore_like_the_whole_image(engines) -> None:
    eng = engines["sr"]
    x = _nchw(data.astronaut()[:72, :90])
    whole = run_tiled(eng, x, tile=0)
    strips = run_tiled(eng, x, tile=(24, 0))
    grid = run_tiled(eng, x, tile=(32, 40))
    assert np.abs(strips - whole).max() < 1e-4 and np.abs(grid - whole).max() < 1e-4


# -- receptive field ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["sr", "denoise"])
def test_measured_receptive_field_is_what_tiles_need(engines, task: str) -> None:
    eng = engines[task]
    rf = receptive_field(eng)
    assert rf.measured and not rf.saturated
    assert 4 < rf.radius < receptive_field_bound(eng.spec.arch, eng.num_scales)
    assert default_overlap(eng) >= rf.radius + 2
    assert default_overlap(eng) % pyramid_alignment(eng.spec.arch, eng.num_scales) == 0
    # A window that ends just inside the receptive field changes the output; one beyond it
    # gives the whole-image result to float precision.
    clean = data.camera()[:128, :128] if task == "denoise" else data.astronaut()[:64, :64]
    img = _nchw(_degraded(task, clean))
    level = Restorer(eng)._level_map
    whole = run_tiled(eng, img, level_map=level, level=LEVELS[task], tile=0)
    far = run_tiled(eng, img, level_map=level, level=LEVELS[task], tile=32, overlap=rf.radius + 1)
    near = run_tiled(eng, img, level_map=level, level=LEVELS[task], tile=32, overlap=rf.radius // 4)
    assert np.abs(far - whole).max() * 255 < 1e-2
    assert np.abs(near - whole).max() * 255 > 0.1


def test_receptive_field_canvas_limit_and_description(engines) -> None:
    """A canvas smaller than the influence reports a saturated lower bound, and says so."""
    eng = engines["denoise"]
    small = measure_receptive_field(eng, max_canvas=48)
    assert small.measured and small.saturated
    assert small.radius < receptive_field(eng).radius
    assert small.describe().startswith(">= ")
    assert receptive_field(eng).describe() == f"{receptive_field(eng).radius} px (measured)"
    assert "architecture bound" in ReceptiveField(216, measured=False).describe()


def test_receptive_field_is_stored_per_model_file_and_reused(
    engines, tmp_path: Path, monkeypatch
) -> None:
    """A measurement is kept in the user cache; a later process (here: a cleared in-process
    cache) reads it back instead of measuring again."""
    from scn_deploy.tiling import receptive_fields as rf_module

    eng = engines["sr"]
    monkeypatch.setenv("SCN_CACHE", str(tmp_path))
    monkeypatch.setattr(rf_module, "_RF_CACHE", {})
    first = receptive_field(eng)
    key = receptive_field_key(eng)
    assert key is not None and key.endswith(f"-s{eng.num_scales}-t{rf_module.RF_THRESHOLD:g}")
    assert receptive_field_store().parent == tmp_path
    assert stored_receptive_field(key) == first
    # a stored value is what the next run uses: store another radius and see it come back
    store_receptive_field(key, ReceptiveField(first.radius + 5, measured=True))
    monkeypatch.setattr(rf_module, "_RF_CACHE", {})

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(rf_module, "measure_receptive_field", no_measuring)
    assert receptive_field(eng).radius == first.radius + 5


def test_receptive_field_store_survives_a_broken_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCN_CACHE", str(tmp_path))
    receptive_field_store().write_text("{not json")
    assert stored_receptive_field("k") is None
    store_receptive_field("k", ReceptiveField(12, measured=True, saturated=True))
    assert stored_receptive_field("k") == ReceptiveField(12, measured=True, saturated=True)
    # an unwritable cache is not an error: the next run measures again
    monkeypatch.setenv("SCN_CACHE", str(tmp_path / "file"))
    (tmp_path / "file").write_text("")
    store_receptive_field("k", ReceptiveField(3, measured=True))
    assert stored_receptive_field("k") is None


def test_concurrent_processes_lose_no_stored_receptive_field(tmp_path: Path, monkeypatch) -> None:
    """Four processes storing 100 different keys at the same time: each write re-reads the
    store under a lock and merges, so every key is there afterwards."""
    from concurrent.futures import ProcessPoolExecutor

    monkeypatch.setenv("SCN_CACHE", str(tmp_path))  # the workers inherit it
    keys = [f"key-{i}" for i in range(100)]
    found = [ReceptiveField(i, measured=True) for i in range(100)]
    context = multiprocessing.get_context("spawn")  # fresh interpreters, no engine threads
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        list(pool.map(store_receptive_field, keys, found, chunksize=1))
    stored = json.loads(receptive_field_store().read_text())
    assert sorted(stored) == sorted(keys)
    assert all(stored[f"key-{i}"]["radius"] == i for i in range(100))
    assert not [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"]  # no leftovers


# -- seams and quality on real photos ----------------------------------------------------------


def _seam_stats(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return float((diff <= 1).mean()), int(diff.max())


@pytest.mark.parametrize("task", ["sr", "denoise", "deblock"])
def test_tiled_matches_whole_image_on_photos(engines, task: str) -> None:
    """Tile 48 vs the whole image, uint8: the tiled output is the whole-image one (>= 99.9% of
    pixels within 1 grey level, none off by more than 2), and the model really restores the
    photo (PSNR gain over the degraded input). 150x227 is not a multiple of the pyramid
    alignment, so the right-most and bottom windows are padded like the whole image is."""
    clean = data.chelsea()[:150, :227]
    if task != "sr":
        clean = clean[..., 1]  # the gray models
    degraded = _degraded(task, clean)
    eng = engines[task]
    whole = Restorer(eng).restore(degraded, LEVELS[task], dtype=np.uint8)
    tiled = Restorer(eng, RestoreOptions(tile=48, batch=3)).restore(
        degraded, LEVELS[task], dtype=np.uint8
    )
    s = eng.spec.scale
    assert tiled.shape == whole.shape == (150 * s, 227 * s, *clean.shape[2:])
    within_one, worst = _seam_stats(whole, tiled)
    assert within_one >= 0.999 and worst <= 2, (within_one, worst)
    if task != "sr":
        assert psnr(whole, clean) > psnr(degraded, clean) + 1.0


def test_gray_photo_tta_and_batching(engines) -> None:
    """A gray photo through the colour SR model, x8 TTA, tiled with batches of 5 windows."""
    eng = engines["sr"]
    image = data.camera()[:48, :72]
    whole = Restorer(eng, RestoreOptions(tta=True)).restore(image, dtype=np.uint8)
    tiled = Restorer(eng, RestoreOptions(tile=24, tta=True, batch=5)).restore(image, dtype=np.uint8)
    assert whole.shape == (96, 144)
    within_one, worst = _seam_stats(whole, tiled)
    assert within_one >= 0.999 and worst <= 2


def test_run_tiled_nchw_equals_engine_for_aligned_sizes(engines) -> None:
    eng = engines["sr"]
    x = _nchw(data.coffee()[:64, :96])
    ref = eng.infer(x)
    out = run_tiled(eng, x, tile=32, batch=2)
    assert out.shape == ref.shape == (1, 3, 128, 192)
    assert np.abs(out - ref).max() < 1e-4


def test_memory_is_tiles_not_image(engines, monkeypatch) -> None:
    """The engine never sees more than one window batch, whatever the image size."""
    eng = engines["denoise"]
    seen = _recording(eng, monkeypatch)
    Restorer(eng, RestoreOptions(tile=32, tile_overlap=8, batch=2)).restore(
        np.zeros((96, 136, 3), np.uint8), 10.0, dtype=np.uint8
    )
    # a gray model on a colour image runs its 3 channels as a batch of 3 per window
    assert max(n * h * w for n, _, h, w in seen) <= 2 * 3 * 48 * 48
