"""Training: learning on generated images, exact resume, blind denoising, bad data folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scn_deploy.errors import ConfigError, DataError  # noqa: E402
from scn_deploy.imageio import write_image  # noqa: E402
from scn_deploy.metrics import psnr  # noqa: E402
from scn_deploy.modelfile import load_model  # noqa: E402
from scn_deploy.train import TrainConfig, Trainer  # noqa: E402
from scn_deploy.train.data import BatchMaker  # noqa: E402


def _smooth_images(folder: Path, count: int, size: int = 64, gray: bool = False) -> Path:
    """Smooth random images (sums of low-frequency waves): learnable for a tiny network."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        chans = []
        for _ in range(1 if gray else 3):
            f = rng.uniform(1, 4, size=2)
            ph = rng.uniform(0, 6, size=2)
            chans.append(
                0.5
                + 0.25 * np.sin(2 * np.pi * f[0] * yy + ph[0])
                + 0.2 * np.cos(2 * np.pi * f[1] * xx + ph[1])
            )
        img = np.clip(np.stack(chans, -1) * 255, 0, 255).astype(np.uint8)
        write_image(folder / f"img{i:02d}.png", img[..., 0] if gray else img)
    return folder


def _cfg(tmp_path: Path, data: Path, **kw) -> TrainConfig:
    base = dict(
        task="sr",
        scale=2,
        data=[str(data)],
        preset="tiny",
        num_scales=2,
        steps=40,
        batch=4,
        patch=16,
        val_count=2,
        val_every=20,
        val_crop=48,
        out=str(tmp_path / "run"),
        log_every=5,
        ckpt_every=10,
        lr=2e-3,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return _smooth_images(tmp_path_factory.mktemp("data") / "imgs", 8)


def test_training_lowers_loss_and_beats_start_psnr(tmp_path: Path, images: Path) -> None:
    result = Trainer(_cfg(tmp_path, images, steps=60)).run()
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert last < 0.6 * first
    assert result.best_psnr is not None and result.start_psnr is not None
    assert result.best_psnr > result.start_psnr + 3
    _model, spec = load_model(tmp_path / "run" / "best.safetensors")
    assert spec.training["steps"] > 0 and spec.training["train_images"] == 6
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") >= 10


def test_resume_reaches_the_same_weights(tmp_path: Path, images: Path) -> None:
    full = Trainer(_cfg(tmp_path / "a", images, steps=20))
    full.run()
    part = Trainer(_cfg(tmp_path / "b", images, steps=20))

    def interrupt(record: dict) -> None:  # Ctrl-C after step 10
        if record["step"] == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        part.run(interrupt)
    resumed = Trainer(_cfg(tmp_path / "b", images, steps=20), resume=True)
    assert resumed.step == 10
    resumed.run()
    for (k, a), b in zip(
        full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), k


def test_resume_refuses_a_different_run(tmp_path: Path, images: Path) -> None:
    Trainer(_cfg(tmp_path, images, steps=5)).run()
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(_cfg(tmp_path, images, steps=5))
    with pytest.raises(ConfigError, match="patch differs"):
        Trainer(_cfg(tmp_path, images, steps=10, patch=24), resume=True)
    with pytest.raises(ConfigError, match="held_out_seed differs"):
        Trainer(_cfg(tmp_path, images, steps=10, val_seed=3), resume=True)


def test_blind_denoiser_gets_per_sample_sigma(tmp_path: Path, images: Path) -> None:
    cfg = _cfg(tmp_path, images, task="denoise", sigma_range=(5.0, 50.0), steps=4, patch=24)
    trainer = Trainer(cfg)
    assert trainer.spec.conditioned and trainer.spec.arch.cond_channels == 1
    batch = trainer.maker(3)
    levels = batch.cond[:, 0, 0, 0] * 255
    assert len(np.unique(np.round(levels, 4))) == cfg.batch  # each sample its own sigma
    assert np.all((levels >= 5) & (levels <= 50))
    # The noise in each sample matches its own sigma.
    noise = (batch.inputs - batch.targets).reshape(cfg.batch, -1).std(axis=1) * 255
    assert np.allclose(noise, levels, rtol=0.25)
    trainer.run()


def test_blind_deblocker_trains(tmp_path: Path, images: Path) -> None:
    cfg = _cfg(
        tmp_path, images, task="deblock", quality_range=(10, 40), steps=3, patch=24, gray=True
    )
    result = Trainer(cfg).run()
    assert result.steps == 3
    _, spec = load_model(tmp_path / "run" / "last.safetensors")
    assert spec.channels == 1 and spec.level_range == (10.0, 40.0)


def test_restore_training_starts_from_the_identity(tmp_path: Path, images: Path) -> None:
    """A fresh denoiser outputs its input (validation PSNR at step 0 = the noisy input's), the
    first steps improve on it, and an SR net keeps its random (unit-gain) tail."""
    cfg = _cfg(
        tmp_path,
        images,
        task="denoise",
        sigma=25.0,
        steps=20,
        patch=24,
        val_every=20,
        lr_halve_start=100,
    )
    trainer = Trainer(cfg)
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(trainer.model(x), x)
    noisy = [
        (s.inputs[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        for s in trainer.val_set
    ]
    input_psnr = np.mean(
        [psnr(n, s.target, y_channel=True) for n, s in zip(noisy, trainer.val_set, strict=True)]
    )
    result = trainer.run()
    assert result.start_psnr == pytest.approx(input_psnr, abs=1e-6)
    assert result.best_psnr > result.start_psnr + 0.5
    sr = Trainer(_cfg(tmp_path / "sr", images, steps=1))
    assert sr.model.tail.parametrizations.weight.original0.abs().min() > 0


def test_batches_are_a_function_of_the_step(images: Path) -> None:
    from scn_deploy.imageio import list_images
    from scn_deploy.train.data import load_bank

    bank = load_bank(list_images(images), gray=False, min_size=32, scale=2)
    maker = BatchMaker(bank, task="sr", scale=2, patch=16, batch=3, seed=1)
    a, b, c = maker(5), maker(5), maker(6)
    assert np.array_equal(a.inputs, b.inputs) and np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.inputs, c.inputs)
    assert a.targets.shape == (3, 3, 32, 32) and a.inputs.shape == (3, 3, 16, 16)


def test_bad_data_folders(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError):
        Trainer(_cfg(tmp_path, empty))
    with pytest.raises(DataError):
        Trainer(_cfg(tmp_path, tmp_path / "missing"))
    small = _smooth_images(tmp_path / "small", 4, size=20)
    with pytest.raises(DataError, match="smaller than"):
        Trainer(_cfg(tmp_path, small, val_count=1))


def test_unreadable_and_small_files_are_skipped_with_names(tmp_path: Path) -> None:
    data = _smooth_images(tmp_path / "mixed", 5)
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    write_image(data / "tiny.png", np.zeros((10, 10, 3), np.uint8))
    trainer = Trainer(_cfg(tmp_path, data, val_count=1, steps=2))
    skipped = dict(trainer.bank.skipped)
    assert any("broken.png" in p for p in skipped)
    assert any("tiny.png" in p for p in skipped)
    assert len(trainer.bank.hr) == 4 or len(trainer.bank.hr) == 3


def test_lr_schedule_halves_like_the_paper() -> None:
    cfg = TrainConfig(task="sr", steps=4000, data=["x"])
    # 40 epochs of 100 steps: halve after epoch 25, then every 3 epochs.
    assert cfg.lr_factor(2499) == 1.0
    assert cfg.lr_factor(2500) == 0.5
    assert cfg.lr_factor(2799) == 0.5
    assert cfg.lr_factor(2800) == 0.25
    assert cfg.lr_factor(3999) == 0.5**5


def test_deeper_network_starts_as_the_shallower_model(tmp_path: Path, images: Path) -> None:
    """Initialising a deeper network from a trained shallower one (e.g. base from small):
    the copied blocks keep their weights, the extra ones start as identities, so the deeper
    network computes exactly what the shallower model does and validation starts there."""
    shallow = Trainer(_cfg(tmp_path / "shallow", images, steps=10, arch={"num_blocks": 2}))
    shallow.run()
    best = tmp_path / "shallow" / "run" / "best.safetensors"
    deep = Trainer(
        _cfg(tmp_path / "deep", images, steps=10, init=str(best), arch={"num_blocks": 4})
    )
    assert len(deep.model.blocks) == 4
    small, _ = load_model(best)
    x = torch.rand(1, 3, 21, 18)
    with torch.no_grad():
        assert torch.allclose(deep.model(x), small(x), atol=1e-6)
    result = deep.run()
    assert result.start_psnr == pytest.approx(shallow.best_psnr, abs=1e-6)
    # The new blocks learn: their residual gains leave zero.
    gains = deep.model.blocks[3].body[-1].parametrizations.weight.original0
    assert gains.abs().max() > 0
    # A network with no copied block (every block fresh) keeps its random blocks.
    fresh = Trainer(_cfg(tmp_path / "fresh", images, steps=1, arch={"num_blocks": 2}))
    assert fresh.model.blocks[1].body[-1].parametrizations.weight.original0.abs().min() > 0


def test_lr_warmup_ramps_up_then_follows_the_schedule(tmp_path: Path, images: Path) -> None:
    cfg = TrainConfig(task="sr", steps=40, data=["x"], lr_warmup=4, lr_halve_start=20)
    assert [cfg.lr_factor(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert cfg.lr_factor(20) == 0.5
    with pytest.raises(ConfigError):
        TrainConfig(task="sr", data=["x"], lr_warmup=-1)
    # The optimiser sees the ramp: the LR used at step 0 is a quarter of --lr.
    trainer = Trainer(_cfg(tmp_path, images, steps=2, val_count=1, lr=1e-3, lr_warmup=4))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-4)


@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_train_step_minimises_the_chosen_loss(tmp_path: Path, images: Path, loss: str) -> None:
    # fp32: the loss is compared with an fp32 forward pass (bf16 autocast rounds differently)
    trainer = Trainer(_cfg(tmp_path, images, steps=2, val_count=1, loss=loss, precision="fp32"))
    batch = trainer.maker(0)
    with torch.no_grad():
        pred = trainer.model(torch.from_numpy(batch.inputs)).float()
    err = pred - torch.from_numpy(batch.targets)
    expected = float(err.pow(2).mean() if loss == "l2" else err.abs().mean())
    assert trainer.train_step(batch) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ConfigError, match="loss"):
        TrainConfig(task="sr", data=["x"], loss="l3")


def test_loader_workers_give_the_same_run(tmp_path: Path, images: Path) -> None:
    """Batch t depends only on (seed, t): DataLoader workers change nothing but speed.

    The run with workers happens in a child process: DataLoader installs a Python SIGCHLD
    handler for the rest of the process that starts workers. That handler is how a freed
    signal stack left by OpenVINO Cores (fixed by `openvino_engine.shared_core`) killed
    this test process; the child keeps the test process's signal handling its own.
    """
    import dataclasses
    import json
    import subprocess
    import sys

    Trainer(_cfg(tmp_path / "a", images, steps=6, val_count=1)).run()
    cfg = _cfg(tmp_path / "b", images, steps=6, val_count=1, workers=2)
    code = (
        "import json, sys; from scn_deploy.train import TrainConfig, Trainer; "
        "Trainer(TrainConfig(**json.loads(sys.argv[1]))).run()"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, json.dumps(dataclasses.asdict(cfg))],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    a, _ = load_model(tmp_path / "a" / "run" / "last.safetensors")
    b, _ = load_model(tmp_path / "b" / "run" / "last.safetensors")
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-6)


@pytest.mark.slow
def test_torchrun_ddp_on_cpu(tmp_path: Path, images: Path) -> None:
    """Two gloo ranks under torchrun (the standard launcher) train and write one model."""
    import shutil
    import subprocess
    import sys

    scn = shutil.which("scn")
    if scn is None:
        pytest.skip("the scn console script is not installed")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        scn,
        "train",
        "--task",
        "sr",
        "--scale",
        "2",
        "--data",
        str(images),
        "--preset",
        "tiny",
        "--num-scales",
        "2",
        "--steps",
        "4",
        "--batch",
        "2",
        "--patch",
        "16",
        "--val-count",
        "1",
        "--val-every",
        "2",
        "--out",
        str(tmp_path / "ddp"),
    ]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    # its own session: signals that torchrun's agent sends to its process group (e.g. when a
    # rank fails on a loaded machine) must not reach this test process
    res = subprocess.run(
        cmd, capture_output=True, text=True, timeout=240, env=env, start_new_session=True
    )
    assert res.returncode == 0, res.stderr[-2000:]
    _, spec = load_model(tmp_path / "ddp" / "last.safetensors")
    assert spec.training["steps"] == 4


def test_split_held_out_finds_a_runs_validation_images_again(tmp_path: Path) -> None:
    """What lab/colour-vs-gray/colour_vs_gray.py relies on: the split depends only on files
    and seed."""
    from scn_deploy.train.data import collect_files
    from scn_deploy.train.validation import split_held_out

    data = _smooth_images(tmp_path / "imgs", 6)
    files = collect_files([str(data)])
    for seed in (0, 1):
        train, held = split_held_out(files, seed=seed, count=2)
        assert len(held) == 2 and set(train).isdisjoint(held) and len(train) == 4
        trainer = Trainer(_cfg(tmp_path / f"run{seed}", data, val_count=2, seed=seed, steps=1))
        assert sorted(trainer.bank.names) == sorted(str(f) for f in train)
    assert split_held_out(files, seed=0, count=2) == split_held_out(files, seed=0, count=2)
    with pytest.raises(DataError, match="more than 6"):
        split_held_out(files, seed=0, count=6)


def test_val_seed_keeps_the_held_out_images_when_the_batch_seed_changes(tmp_path: Path) -> None:
    """Continuing a model with a new --seed must not train on the first run's held-out images."""
    from scn_deploy.train.data import collect_files
    from scn_deploy.train.validation import split_held_out

    data = _smooth_images(tmp_path / "imgs", 8)
    files = collect_files([str(data)])
    first = Trainer(_cfg(tmp_path / "a", data, val_count=3, seed=0, steps=1))
    again = Trainer(_cfg(tmp_path / "b", data, val_count=3, seed=5, val_seed=0, steps=1))
    other = Trainer(_cfg(tmp_path / "c", data, val_count=3, seed=5, steps=1))
    assert sorted(again.bank.names) == sorted(first.bank.names)
    assert sorted(other.bank.names) != sorted(first.bank.names)  # seed 5 alone holds out others
    held = split_held_out(files, seed=0, count=3)[1]
    assert not set(str(f) for f in held) & set(again.bank.names)


def test_snapshots_every_n_steps_feed_weight_averaging(tmp_path: Path, images: Path) -> None:
    from scn_deploy.train.average import average_model_files

    Trainer(_cfg(tmp_path, images, steps=12, ckpt_every=100, snapshot_every=4)).run()
    snaps = sorted((tmp_path / "run" / "snapshots").glob("*.safetensors"))
    assert [p.name for p in snaps] == [f"step-{s:06d}.safetensors" for s in (4, 8, 12)]
    assert [load_model(p)[1].training["steps"] for p in snaps] == [4, 8, 12]
    first, last = load_model(snaps[0])[0].state_dict(), load_model(snaps[-1])[0].state_dict()
    assert any(not torch.equal(first[k], last[k]) for k in first)  # the weights moved
    _model, spec = average_model_files(snaps)
    assert spec.training["steps"] == 12 and len(spec.training["averaged_from"]) == 3
    with pytest.raises(ConfigError, match="snapshot_every"):
        TrainConfig(task="sr", data=["x"], snapshot_every=-1)


def test_cuda_fp16_training_scales_the_loss(monkeypatch) -> None:
    """fp16 training gets a GradScaler (on CUDA); fp32 / bf16 get a disabled one."""
    from types import SimpleNamespace

    from scn_deploy.train import loop

    made = []

    class Recording:
        def __init__(self, device: str, enabled: bool) -> None:
            made.append((device, enabled))

    monkeypatch.setattr(loop.torch.amp, "GradScaler", Recording)
    loop.grad_scaler(SimpleNamespace(device="cuda:1", precision="fp16"))
    loop.grad_scaler(SimpleNamespace(device="cpu", precision="bf16"))
    loop.grad_scaler(SimpleNamespace(device="cuda", precision="fp32"))
    assert made == [("cuda", True), ("cpu", False), ("cuda", False)]


def test_train_step_goes_through_the_scaler_and_resume_keeps_it(
    tmp_path: Path, images: Path
) -> None:
    """An enabled scaler (CPU's, standing in for CUDA's) scales the loss, steps and updates;
    its state is saved and restored with the run."""
    import torch

    trainer = Trainer(_cfg(tmp_path, images, steps=4, ckpt_every=2))
    trainer.scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train_step(trainer.maker(0))
    assert any(
        not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True)
    )
    assert trainer.scaler.get_scale() == 1024.0  # finite gradients: the scale stays
    trainer.save()
    assert torch.load(trainer.out / "state.pt", weights_only=False)["scaler"]["scale"] == 1024.0
    resumed = Trainer(_cfg(tmp_path, images, steps=4, ckpt_every=2), resume=True)
    assert not resumed.scaler.is_enabled()  # an fp32 run: the saved state is not forced on it


def test_sr_trains_on_given_degraded_inputs(tmp_path: Path, images: Path) -> None:
    """--inputs DIR: each sample's LR comes from a given folder (drawn per sample), and
    validation uses the first folder; a missing or mis-sized input is named."""
    from scn_deploy.degrade import bicubic_degrade
    from scn_deploy.imageio import read_image

    flat, dark = tmp_path / "flat", tmp_path / "dark"
    for folder, value in ((flat, 128), (dark, 64)):
        for path in sorted(images.iterdir()):
            hr = read_image(path)
            hr = hr[: hr.shape[0] // 2 * 2, : hr.shape[1] // 2 * 2]
            lr = np.full_like(bicubic_degrade(hr, 2), value)
            write_image(folder / f"{path.stem}.png", lr)
    trainer = Trainer(_cfg(tmp_path / "run", images, steps=2, inputs=[str(flat), str(dark)]))
    batch = trainer.maker(0)
    values = {round(float(v) * 255) for v in np.unique(batch.inputs)}
    assert values <= {64, 128} and len(values) == 2  # both folders drawn within one batch
    assert all(float(s.inputs.mean()) == pytest.approx(128 / 255) for s in trainer.val_set)
    assert trainer.training_summary()["inputs"] == [str(flat), str(dark)]

    (flat / "img00.png").unlink()
    with pytest.raises(DataError, match="no input named img00"):
        Trainer(_cfg(tmp_path / "run2", images, steps=2, inputs=[str(flat)]))
    write_image(flat / "img00.png", np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(DataError, match="bicubic LR of"):
        Trainer(_cfg(tmp_path / "run3", images, steps=2, inputs=[str(flat)]))
    with pytest.raises(ConfigError, match="--task sr"):
        _cfg(tmp_path / "run4", images, task="denoise", sigma=25.0, inputs=[str(flat)])


@pytest.mark.parametrize("space_to_depth", [1, 2])
def test_colour_model_starts_as_the_gray_model(tmp_path: Path, space_to_depth: int) -> None:
    """--init with a gray restoration model fills a colour one completely: on a gray image
    given as RGB it computes the gray model's result in every channel."""
    from scn_deploy.arch import preset_spec
    from scn_deploy.arch.scn import build_network
    from scn_deploy.modelfile import save_model
    from scn_deploy.train.init import init_from

    gray = preset_spec(
        "tiny", task="denoise", channels=1, level_range=(0.0, 75.0), space_to_depth=space_to_depth
    )
    torch.manual_seed(0)
    source = build_network(gray.arch).eval()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = save_model(tmp_path / "gray.safetensors", source, gray)
    colour = build_network(gray.arch.replace(in_channels=3, out_channels=3)).eval()
    assert init_from(colour, str(path)) == []  # every tensor comes from the gray model
    y = torch.rand(2, 1, 21, 30)
    cond = torch.full((2, 1, 21, 30), 0.1)
    with torch.no_grad():
        expected = source(y, cond)
        got = colour(y.expand(-1, 3, -1, -1), cond)
    assert (got - expected.expand(-1, 3, -1, -1)).abs().max() < 1e-5
    assert (expected - y).abs().max() > 1e-3  # the network does something


def test_bf16_training_lowers_the_loss_and_saves_fp32_weights(tmp_path: Path, images: Path) -> None:
    """bf16 autocast runs the convolutions in bf16; the weights, the optimizer state and the
    model file stay fp32, and the file says which precision trained it."""
    trainer = Trainer(_cfg(tmp_path, images, steps=60, precision="bf16", channels_last=True))
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    result = trainer.run()
    assert result.history[-1]["loss"] < 0.6 * result.history[0]["loss"]
    assert result.best_psnr is not None and result.start_psnr is not None
    assert result.best_psnr > result.start_psnr + 3
    from safetensors import safe_open

    with safe_open(str(tmp_path / "run" / "best.safetensors"), "np") as fh:
        assert {str(fh.get_tensor(k).dtype) for k in fh.keys()} == {"float32"}  # noqa: SIM118
    _model, spec = load_model(tmp_path / "run" / "best.safetensors")
    assert spec.training["precision"] == "bf16"
    moments = [s["exp_avg"] for s in trainer.optimizer.state.values()]
    assert moments and all(m.dtype == torch.float32 for m in moments)


@pytest.mark.parametrize(
    ("device", "native", "expected"),
    [("cpu", True, "bf16"), ("cpu", False, "fp32"), ("cuda", True, "fp32")],
)
def test_auto_precision_trains_bf16_only_where_the_cpu_has_it(
    monkeypatch, device: str, native: bool, expected: str
) -> None:
    from scn_deploy import cpu
    from scn_deploy.train.config import resolve_precision

    monkeypatch.setattr(cpu, "native_bf16", lambda: native)
    precision, why = resolve_precision("auto", device)
    assert precision == expected and why.startswith("auto")
    assert resolve_precision("fp32", device) == ("fp32", "as asked")
    assert TrainConfig().precision == "auto"
