"""The streamed ImageNet path: listing, decoding with the standard transforms, reproducible
per-item augmentation (resumable mid-epoch), workers, and the errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gattanet_sim import data as D

CLASSES = ("ant", "bee", "cow")
SIZES = ((40, 30), (50, 64), (33, 47), (64, 36))  # (width, height), every image its own


def write_imagenet(base: Path, split: str, classes=CLASSES, per_class: int = 4, seed: int = 0):
    """base/split/<class>/ of random images, alternately JPEG and PNG, of different sizes."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (base / split / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = SIZES[i % len(SIZES)]
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            suffix = ".JPEG" if i % 2 == 0 else ".png"
            Image.fromarray(pixels).save(base / split / c / f"{c}_{i:03d}{suffix}")


@pytest.fixture
def imagenet(tmp_path, monkeypatch) -> Path:
    """tmp/data/imagenet-tiny/{train,val}/<3 classes>/: 4 and 2 images each; no workers."""
    monkeypatch.setenv("GATTANET_WORKERS", "0")
    base = tmp_path / "data" / "imagenet-tiny"
    write_imagenet(base, "train")
    write_imagenet(base, "val", per_class=2, seed=1)
    return tmp_path / "data"


def load(root: Path, split: str = "train") -> D.StreamedImageSet:
    return D.load_split("imagenet", split, root, image_size=32)


def epoch(data, generator=None, start=0, order=None, batch_size=5):
    return list(D.batches(data, batch_size, "cpu", order, generator, start))


def test_load_split_lists_files_with_train_labels(imagenet):
    """train: 12 files in class then name order; val maps its folders to train's labels."""
    train = load(imagenet)
    assert isinstance(train, D.StreamedImageSet)
    assert len(train) == 12 and train.classes == list(CLASSES)
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert train.labels.dtype == torch.int64
    assert [Path(p).name for p, _ in train.samples[:2]] == ["ant_000.JPEG", "ant_001.png"]
    assert train.image_size == 32 and train.resize == round(32 * 256 / 224)
    default = D.load_split("imagenet", "train", imagenet)
    assert default.image_size == 224 and default.resize == 256


def test_val_with_fewer_classes_keeps_train_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("GATTANET_WORKERS", "0")
    write_imagenet(tmp_path, "train")
    write_imagenet(tmp_path, "val", classes=("bee", "cow"), per_class=1)  # no ant
    val = load(tmp_path, "val")
    assert val.classes == list(CLASSES) and val.labels.tolist() == [1, 2]


def test_batches_are_float_images_in_unit_range(imagenet):
    out = epoch(load(imagenet))
    assert [tuple(x.shape) for x, _ in out] == [(5, 3, 32, 32), (5, 3, 32, 32), (2, 3, 32, 32)]
    images = torch.cat([x for x, _ in out])
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1
    assert images.std() > 0.05  # real pixels, not a constant
    assert torch.cat([y for _, y in out]).tolist() == load(imagenet).labels.tolist()


def test_eval_transform_is_resize_then_centre_crop(imagenet):
    """A 40x30 image: short side to 37, centre 32x32, equal to torchvision's own pipeline."""
    from torchvision.transforms import v2

    data = load(imagenet)
    path = data.samples[0][0]  # 40x30
    raw = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    expected = v2.CenterCrop(32)(v2.Resize(37, antialias=True)(raw))
    assert torch.equal(data.decode(0, None), expected)


def test_training_transform_is_random_resized_crop_and_flip_from_the_seed(imagenet):
    """decode(i, seed) is torchvision's crop + flip drawn right after manual_seed(seed)."""
    from torchvision.transforms import v2

    data = load(imagenet)
    raw = torch.from_numpy(np.array(Image.open(data.samples[1][0]).convert("RGB")))
    raw = raw.permute(2, 0, 1)  # (3, H, W)
    for seed in range(6):  # both sides of the coin
        torch.manual_seed(seed)
        expected = v2.RandomHorizontalFlip()(v2.RandomResizedCrop(32, antialias=True)(raw))
        assert torch.equal(data.decode(1, seed), expected)


def test_eval_batches_are_the_same_every_time(imagenet):
    data = load(imagenet)
    first, second = epoch(data), epoch(data)
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(first, second))


def test_augmentation_depends_on_the_generator_seed_alone(imagenet):
    data = load(imagenet)
    a = torch.cat([x for x, _ in epoch(data, torch.Generator().manual_seed(3))])
    b = torch.cat([x for x, _ in epoch(data, torch.Generator().manual_seed(3))])
    c = torch.cat([x for x, _ in epoch(data, torch.Generator().manual_seed(4))])
    plain = torch.cat([x for x, _ in epoch(data)])
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, plain)
    assert (a != c).flatten(1).any(1).all()  # every image drawn afresh, not just one


def test_each_position_gets_its_own_augmentation(tmp_path, monkeypatch):
    """The same file at every position of the order is cropped differently at each."""
    monkeypatch.setenv("GATTANET_WORKERS", "0")
    write_imagenet(tmp_path, "train", classes=("ant",), per_class=1)
    write_imagenet(tmp_path, "val", classes=("ant",), per_class=1)
    data = load(tmp_path)
    order = torch.zeros(6, dtype=torch.int64)  # image 0, six times
    images = torch.cat([x for x, _ in epoch(data, torch.Generator().manual_seed(1), order=order)])
    assert len({bytes(img.numpy()) for img in images}) == 6


def test_resuming_mid_epoch_gives_the_same_tail_and_leaves_the_generator(imagenet):
    """A training loop saves the generator mid-epoch and resumes with start=1: same batches."""
    data = load(imagenet)
    order = D.epoch_order(len(data), seed=0, epoch=2)
    g = torch.Generator().manual_seed(11)
    state = g.get_state()
    full = epoch(data, g, order=order)
    assert torch.equal(g.get_state(), state)  # iterating drew nothing from it
    resumed = epoch(data, torch.Generator().set_state(state), start=1, order=order)
    assert len(resumed) == len(full) - 1
    for (a, la), (b, lb) in zip(full[1:], resumed):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_augmented_epoch_leaves_the_global_rng_alone(imagenet):
    data = load(imagenet)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    epoch(data, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), before)


def test_two_workers_give_the_same_batches(imagenet, monkeypatch):
    data = load(imagenet)
    order = D.epoch_order(len(data), seed=1, epoch=0)
    alone = epoch(data, torch.Generator().manual_seed(2), order=order)
    workers = []

    class Spy(D.DataLoader):
        def __init__(self, *args, **kwargs):
            workers.append(kwargs["num_workers"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(D, "DataLoader", Spy)
    monkeypatch.setenv("GATTANET_WORKERS", "2")
    torch.manual_seed(7)
    before = torch.get_rng_state()
    shared = epoch(data, torch.Generator().manual_seed(2), order=order)
    assert torch.equal(torch.get_rng_state(), before)
    assert workers == [2] and len(alone) == len(shared)
    for (a, la), (b, lb) in zip(alone, shared):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_subset_keeps_files_and_labels(imagenet):
    data = load(imagenet)
    part = data.subset(torch.tensor([11, 0, 5]))
    assert isinstance(part, D.StreamedImageSet)
    assert part.labels.tolist() == [2, 0, 1] and part.classes == data.classes
    assert (part.image_size, part.resize) == (data.image_size, data.resize)
    assert torch.equal(part.decode(1, None), data.decode(0, None))
    masked = data.subset(data.labels == 1)
    assert len(masked) == 4 and masked.labels.tolist() == [1] * 4
    (images, labels), = epoch(part)
    assert images.shape == (3, 3, 32, 32) and labels.tolist() == [2, 0, 1]


def test_corrupt_image_is_named(imagenet):
    bad = imagenet / "imagenet-tiny" / "train" / "bee" / "bee_999.JPEG"
    bad.write_bytes(b"not a jpeg at all")
    data = load(imagenet)
    with pytest.raises(D.DataError, match="bee_999.JPEG"):
        epoch(data)
    with pytest.raises(D.DataError, match="bee_999.JPEG"):
        data.decode(len(data) - 5, seed=1)  # bee's last file, augmented


def test_non_image_file_is_named(imagenet):
    (imagenet / "imagenet-tiny" / "val" / "cow" / "notes.txt").write_text("hello")
    with pytest.raises(D.DataError, match="notes.txt"):
        load(imagenet, "val")


def test_missing_trees_and_unknown_classes_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("GATTANET_WORKERS", "0")
    with pytest.raises(D.DataError, match="does not exist"):
        load(tmp_path / "nowhere")
    with pytest.raises(D.DataError, match="train"):
        load(tmp_path)
    write_imagenet(tmp_path, "train")
    with pytest.raises(D.DataError, match="no val/"):
        load(tmp_path, "val")
    with pytest.raises(D.DataError, match="no test/"):
        load(tmp_path, "test")
    write_imagenet(tmp_path, "val", classes=("ant", "yak"), per_class=1)
    with pytest.raises(D.DataError, match="yak"):
        load(tmp_path, "val")
    with pytest.raises(D.DataError, match="imagenet"):
        D.load_split("imagenett", "train", tmp_path)


def test_in_memory_sets_report_their_image_size(tmp_path):
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    assert D.ImageSet(images, torch.zeros(2, dtype=torch.int64), ["a"]).image_size == 16


@pytest.mark.parametrize("paradigm", ["noisy", "composite", "cued_detection"])
def test_experiments_run_on_a_streamed_imagenet_style_run(imagenet, tmp_path, paradigm):
    """`experiment RUN --paradigm noisy|composite` on a run trained with --dataset imagenet used
    to crash ('StreamedImageSet' object has no attribute 'images'): the split is decoded."""
    from gattanet_sim import build_model, experiment
    from gattanet_sim.io import atomic_save
    from gattanet_sim.recording import open_recording

    torch.manual_seed(0)
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=12, key_dim=4, alpha_init=0.3)
    ckpt = tmp_path / "run.pt"
    atomic_save({"model": model.state_dict(), "model_config": model.config,
                 "config": {"dataset": "imagenet", "data_root": str(imagenet), "image_size": 32,
                            "timesteps": 2}}, ckpt)
    out = tmp_path / "e.nc"
    extra = {"noisy": ["--sigmas", "0,0.1"], "composite": [], "cued_detection": ["--grey", "2"]}[paradigm]
    assert experiment.main([str(ckpt), "--paradigm", paradigm, "--n", "6", *extra, "--units", "2",
                            "--conditions", "bottom-up,off", "--template-images", "2", "--out", str(out)]) == 0
    ds = open_recording(out)
    assert ds.sizes["presentation"] >= 12 and ds.attrs["dataset"] == "imagenet"


def test_a_broken_image_decoded_by_a_worker_is_one_short_line(tmp_path, monkeypatch):
    """A zero-byte JPEG read by a DataLoader worker gave a 1,610-character line holding the
    worker's traceback; now the one-line DataError naming the file."""
    monkeypatch.setenv("GATTANET_WORKERS", "1")
    write_imagenet(tmp_path, "train", per_class=2)
    write_imagenet(tmp_path, "val", per_class=1)
    (tmp_path / "train" / "bee" / "bee_999.JPEG").write_bytes(b"")
    data = load(tmp_path)
    with pytest.raises(D.DataError) as err:
        epoch(data, batch_size=8)
    message = str(err.value)
    assert "bee_999.JPEG" in message and "\n" not in message and len(message) < 400 and "Traceback" not in message


def test_a_decompression_bomb_is_a_data_error_naming_the_file(tmp_path, monkeypatch):
    """PIL's DecompressionBombError escaped as a traceback."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # every 40x30 image is now "a bomb"
    write_imagenet(tmp_path, "train", classes=("ant",), per_class=1)
    with pytest.raises(D.DataError, match="cannot decode image .*ant_000.JPEG"):
        D._read_rgb(next((tmp_path / "train" / "ant").iterdir()))


def test_a_training_stopped_by_a_broken_image_leaves_no_run_directory(tmp_path, capsys):
    """`train --dataset imagenet` on a tree holding a zero-byte JPEG gave the one-line error but
    left OUT/ holding only config.json, a directory that looks like a run."""
    from gattanet_sim import train

    write_imagenet(tmp_path / "data", "train", per_class=2)
    write_imagenet(tmp_path / "data", "val", per_class=1)
    (tmp_path / "data" / "train" / "bee" / "bee_999.JPEG").write_bytes(b"")
    out = tmp_path / "run"
    code = train.main(["--dataset", "imagenet", "--data-root", str(tmp_path / "data"), "--image-size", "32",
                       "--widths", "4,8,8", "--hidden", "16", "--key-dim", "4", "--batch-size", "4", "--epochs", "1",
                       "--quiet", "--timesteps", "2", "--out-dir", str(out)])
    assert code != 0 and "bee_999.JPEG" in capsys.readouterr().err
    assert not out.exists()
