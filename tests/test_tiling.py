"""Tiled inference: the plan, the measured receptive field, and seamless results on photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from skimage import data  # noqa: E402

from scn_deploy.arch import preset_spec  # noqa: E402
from scn_deploy.arch.facts import (  # noqa: E402
    activation_bytes_per_pixel,
    aligned_levels,
    pyramid_alignment,
    receptive_field_bound,
)
from scn_deploy.arch.scn import build_network  # noqa: E402
from scn_deploy.engines import load_engine  # noqa: E402
from scn_deploy.modelfile import save_model  # noqa: E402
from scn_deploy.restore import RestoreOptions, Restorer  # noqa: E402
from scn_deploy.tiling import (  # noqa: E402
    TilePlanner,
    auto_tile,
    default_overlap,
    measure_receptive_field,
    run_tiled,
)


def _model(folder: Path, spec, seed: int = 0) -> Path:
    """A tiny network with perturbed weights; restoration models get a small tail so that
    the output is the input plus a residual of a few grey levels (as a trained model)."""
    torch.manual_seed(seed)
    model = build_network(spec.arch).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
        if spec.scale == 1:
            model.tail.parametrizations.weight.original0.mul_(0.1)
    name = f"{spec.task}{spec.scale}-f{spec.arch.space_to_depth}-{seed}"
    return save_model(folder / f"{name}.safetensors", model, spec)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("models")
    specs = {
        "sr": preset_spec("tiny", task="sr", scale=2),
        "denoise": preset_spec("tiny", task="denoise", level_range=(0.0, 75.0)),
        "deblock": preset_spec("tiny", task="deblock", quality=20),
        # the fast restoration tier's option: the body at half resolution
        "denoise-half": preset_spec(
            "tiny", task="denoise", level_range=(0.0, 75.0), space_to_depth=2
        ),
    }
    return {task: load_engine(_model(folder, spec)) for task, spec in specs.items()}


LEVELS = {"sr": None, "denoise": 25.0, "deblock": None, "denoise-half": 25.0}


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
    with pytest.raises(Exception, match="empty"):
        TilePlanner(0, 10, tile=4)


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


def test_whole_image_is_padded_to_the_capped_alignment(tmp_path: Path, monkeypatch) -> None:
    spec = preset_spec("tiny", task="sr", scale=2, num_scales=3, scale_ratio=2 / 3)
    eng = load_engine(_model(tmp_path, spec))
    x = data.coffee()[:100, :100].astype(np.float32).transpose(2, 0, 1)[None] / 255
    seen: list[tuple[int, ...]] = []
    infer = eng.infer
    eng.infer = lambda x, level=None: seen.append(x.shape) or infer(x, level)
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


def test_rectangular_tiles_restore_like_the_whole_image(engines) -> None:
    eng = engines["sr"]
    x = np.random.default_rng(5).random((1, eng.spec.channels, 72, 90), dtype=np.float32)
    whole = run_tiled(eng, x, tile=0)
    strips = run_tiled(eng, x, tile=(24, 0))
    grid = run_tiled(eng, x, tile=(32, 40))
    assert np.abs(strips - whole).max() < 1e-4 and np.abs(grid - whole).max() < 1e-4


# -- receptive field ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["denoise", "denoise-half"])
def test_measured_receptive_field_is_what_tiles_need(engines, task: str) -> None:
    eng = engines[task]
    rf = measure_receptive_field(eng)
    assert rf.measured and not rf.saturated
    assert 4 < rf.radius < receptive_field_bound(eng.spec.arch, eng.num_scales)
    assert default_overlap(eng) >= rf.radius + 2
    # A window that ends just inside the receptive field changes the output; one beyond it
    # gives the whole-image result to float precision.
    img = data.astronaut()[:128, :128].astype(np.float32).transpose(2, 0, 1)[None] / 255
    level = Restorer(eng)._level_map
    whole = run_tiled(eng, img, level_map=level, level=25.0, tile=0)
    far = run_tiled(eng, img, level_map=level, level=25.0, tile=32, overlap=rf.radius + 1)
    near = run_tiled(eng, img, level_map=level, level=25.0, tile=32, overlap=rf.radius // 2)
    assert np.abs(far - whole).max() * 255 < 1e-2
    assert np.abs(near - whole).max() * 255 > 0.1


# -- seams on real photos ----------------------------------------------------------------------


def _seam_stats(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return float((diff <= 1).mean()), int(diff.max())


@pytest.mark.parametrize("task", ["sr", "denoise", "deblock", "denoise-half"])
@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_tiled_matches_whole_image_on_photos(engines, task: str, photo: str) -> None:
    """Tile 64 (windows down to 64 + overlap) vs the whole image, uint8: >= 99.9% of pixels
    within 1 grey level, none off by more than 4. chelsea (300x451) is not a multiple of the
    pyramid alignment, so its right-most windows are padded like the whole image is."""
    image = getattr(data, photo)()
    if photo == "coffee":
        image = image[:256, :384]  # keeps the suite fast; chelsea runs at full size
    eng = engines[task]
    whole = Restorer(eng).restore(image, LEVELS[task], dtype=np.uint8)
    tiled = Restorer(eng, RestoreOptions(tile=64, batch=3)).restore(
        image, LEVELS[task], dtype=np.uint8
    )
    assert (
        tiled.shape
        == whole.shape
        == (image.shape[0] * eng.spec.scale, image.shape[1] * eng.spec.scale, 3)
    )
    within_one, worst = _seam_stats(whole, tiled)
    assert within_one >= 0.999 and worst <= 4, (within_one, worst)
    if task != "sr":  # the model really changes the image (a residual of several levels)
        assert np.abs(whole.astype(int) - image).mean() > 2


def test_gray_photo_tta_and_batching(engines) -> None:
    eng = engines["sr"]
    image = data.camera()[:120, :136]
    whole = Restorer(eng, RestoreOptions(tta=True)).restore(image, dtype=np.uint8)
    tiled = Restorer(eng, RestoreOptions(tile=32, tta=True, batch=5)).restore(image, dtype=np.uint8)
    assert whole.shape == (240, 272)
    within_one, worst = _seam_stats(whole, tiled)
    assert within_one >= 0.999 and worst <= 4


def test_run_tiled_nchw_equals_engine_for_aligned_sizes(engines) -> None:
    eng = engines["sr"]
    x = data.coffee()[:96, :128].astype(np.float32).transpose(2, 0, 1)[None] / 255
    ref = eng.infer(x)
    out = run_tiled(eng, x, tile=48, batch=2)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-4


def test_memory_is_tiles_not_image(engines) -> None:
    """The engine never sees more than one window batch, whatever the image size."""
    eng = engines["denoise"]
    seen: list[tuple[int, ...]] = []
    infer = eng.infer

    def spy(x, level=None):
        seen.append(x.shape)
        return infer(x, level)

    eng.infer = spy
    try:
        Restorer(eng, RestoreOptions(tile=32, tile_overlap=8, batch=2)).restore(
            np.zeros((200, 300, 3), np.uint8), 10.0, dtype=np.uint8
        )
    finally:
        del eng.infer
    assert max(n * h * w for n, _, h, w in seen) <= 2 * 48 * 48
