"""Data paths: class-folder trees, archives, splits, caching, augmentation, stimuli."""

from __future__ import annotations

import contextlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tree
from PIL import Image

from gattanet_sim import data as D
from gattanet_sim.stimuli import SHAPE_CLASSES, shapes


def test_decode_tree_reads_every_image_with_sorted_class_labels(tree):
    """Images become (N, 3, H, W) uint8 with labels in sorted folder order, pixels intact."""
    ds = D.decode_tree(tree / "train")
    assert ds.images.shape == (18, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.classes == ["cat", "dog", "owl"]
    assert ds.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    first = np.array(Image.open(tree / "train" / "cat" / "0000.png"))
    assert torch.equal(ds.images[0], torch.from_numpy(first).permute(2, 0, 1))


def test_decode_tree_is_cached_and_the_cache_is_used(tree, tmp_path):
    """A second decode reads the cache file (proved by poisoning it) until the tree changes."""
    D.decode_tree(tree / "train")
    (cache,) = (tmp_path / "cache").glob("tree-*.pt")
    stored = torch.load(cache, weights_only=True)
    stored["images"][:] = 7
    torch.save(stored, cache)
    assert (D.decode_tree(tree / "train").images == 7).all()
    write_tree(tree / "train", per_class=7, seed=1)  # tree changed: decoded afresh
    assert len(D.decode_tree(tree / "train")) == 21


def test_grayscale_images_become_rgb(tmp_path):
    root = tmp_path / "gray"
    (root / "a").mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 200, np.uint8), mode="L").save(root / "a" / "x.png")
    ds = D.decode_tree(root)
    assert ds.images.shape == (1, 3, 8, 8) and (ds.images == 200).all()


def test_corrupt_non_image_and_odd_sized_files_are_named(tree):
    train = tree / "train"
    (train / "cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(D.DataError, match="broken.jpg"):
        D.decode_tree(train)
    (train / "cat" / "broken.jpg").unlink()
    (train / "dog" / "notes.txt").write_text("hello")
    with pytest.raises(D.DataError, match="notes.txt"):
        D.decode_tree(train)
    (train / "dog" / "notes.txt").unlink()
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(train / "owl" / "9999.png")
    with pytest.raises(D.DataError, match="9999.png.*--image-size"):
        D.decode_tree(train)
    assert D.decode_tree(train, image_size=16).images.shape[-2:] == (16, 16)


def test_folder_split_is_per_class_disjoint_and_fixed(tree):
    """val holds val_size/classes images of every class, disjoint from train, same every time."""
    train = D.load_split("folder", "train", tree, val_size=6)
    val = D.load_split("folder", "val", tree, val_size=6)
    assert len(train) == 12 and len(val) == 6
    assert torch.bincount(val.labels).tolist() == [2, 2, 2]
    as_rows = lambda s: {bytes(img.numpy()) for img in s.images}  # noqa: E731
    assert not as_rows(train) & as_rows(val)
    assert torch.equal(D.load_split("folder", "val", tree, val_size=6).images, val.images)


def test_folder_uses_its_own_val_and_test_folders(tree):
    write_tree(tree / "val", per_class=2, seed=5)
    assert len(D.load_split("folder", "val", tree, val_size=6)) == 6
    assert len(D.load_split("folder", "train", tree, val_size=6)) == 18  # nothing held out
    with pytest.raises(D.DataError, match="no test/"):
        D.load_split("folder", "test", tree)
    write_tree(tree / "test", classes=("cat", "dog", "owl"), per_class=1, seed=6)
    assert D.load_split("folder", "test", tree).labels.tolist() == [0, 1, 2]


def test_missing_or_empty_roots_are_clear_errors(tmp_path):
    with pytest.raises(D.DataError, match="does not exist"):
        D.load_split("folder", "train", tmp_path / "nowhere")
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(D.DataError, match="no images"):
        D.load_split("folder", "train", tmp_path / "empty")
    with pytest.raises(D.DatasetUnavailable, match="cifar10"):
        D.load_split("cifar10", "train", tmp_path / "empty", download=False)
    with pytest.raises(D.DataError, match="unknown dataset"):
        D.load_split("mnist", "train", tmp_path)


def _archive(path: Path, tree: Path, arcname: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname=arcname)
    return path


def test_cifar_from_a_class_tree_archive_like_the_shared_copy(tmp_path):
    """`--dataset cifar10` finds cifar10-*.tar.gz in the root, extracts it once, splits it."""
    classes = D.CIFAR10_CLASSES
    src = write_tree(tmp_path / "src" / "train", classes=classes, per_class=3, size=8, suffix=".jpg")
    root = tmp_path / "root"
    root.mkdir()
    _archive(root / "cifar10-jpeg-train.tar.gz", src, "cifar10-jpeg/train")
    train = D.load_split("cifar10", "train", root, val_size=10, download=False)
    val = D.load_split("cifar10", "val", root, val_size=10, download=False)
    assert (len(train), len(val)) == (20, 10) and train.classes == list(classes)
    assert len(list((tmp_path / "cache").glob("extracted-*"))) == 1
    with pytest.raises(D.DatasetUnavailable, match="no test split"):
        D.load_split("cifar10", "test", root, download=False)


def test_cifar_from_an_extracted_tree(tmp_path):
    write_tree(tmp_path / "cifar10-jpeg" / "train", classes=D.CIFAR10_CLASSES, per_class=2, size=8)
    assert len(D.load_split("cifar10", "val", tmp_path, val_size=10, download=False)) == 10


@contextlib.contextmanager
def _one_file_archive(path):
    """A .tar.gz holding one good file, open for the caller to add more."""
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("cifar10-jpeg/train/a/ok.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
        yield tar


@pytest.mark.parametrize("kind", ["symlink", "escape", "device"])
def test_unsafe_archives_are_refused(tmp_path, kind):
    """Links, device files and paths escaping the target are refused; nothing lands outside."""
    archive = tmp_path / "cifar10-bad.tar.gz"
    with _one_file_archive(archive) as tar:
        if kind == "symlink":
            bad = tarfile.TarInfo("cifar10-jpeg/train/a/link.png")
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(bad)
        elif kind == "device":
            bad = tarfile.TarInfo("cifar10-jpeg/train/a/dev.png")
            bad.type = tarfile.CHRTYPE
            tar.addfile(bad)
        else:
            bad = tarfile.TarInfo("../../escaped.png")
            bad.size = 2
            tar.addfile(bad, io.BytesIO(b"no"))
    with pytest.raises(D.DataError, match="cannot extract|link or special"):
        D.extract_archive(archive)
    assert not list(tmp_path.rglob("escaped.png"))
    assert not list((tmp_path / "cache").glob("extracted-*"))  # no half-extracted tree


def test_archive_extracted_by_another_process_first_is_kept(tmp_path, monkeypatch):
    """Two trainings started together both extract; the second to finish keeps the first's tree."""
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with _one_file_archive(archive):
        pass
    real_open = tarfile.open

    def other_process_finishes_first(*args, **kwargs):
        monkeypatch.setattr(D.tarfile, "open", real_open)
        D.extract_archive(archive)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(D.tarfile, "open", other_process_finishes_first)
    target = D.extract_archive(archive)
    assert (target / ".complete").exists()
    assert (target / "cifar10-jpeg/train/a/ok.txt").read_bytes() == b"ok"
    assert [p.name for p in target.parent.glob("extracted-*")] == [target.name]  # no tmp left


def test_augment_is_a_padded_crop_or_its_mirror():
    """Each augmented image equals some 4-pixel-padded crop of its source, maybe flipped."""
    images = torch.randint(1, 255, (6, 3, 8, 8), dtype=torch.uint8)
    out = D.augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for src, got in zip(padded, out):
        crops = [src[:, y:y + 8, x:x + 8] for y in range(9) for x in range(9)]
        assert any(torch.equal(got, c) or torch.equal(got, c.flip(-1)) for c in crops)
    again = D.augment(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_batches_cover_the_epoch_in_order_and_resume_mid_epoch():
    ds = D.ImageSet(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2),
                    torch.arange(10), ["x"] * 10)
    order = D.epoch_order(10, seed=3, epoch=1)
    assert torch.equal(order, D.epoch_order(10, seed=3, epoch=1))
    assert not torch.equal(order, D.epoch_order(10, seed=3, epoch=2))
    labels = torch.cat([y for _, y in D.batches(ds, 4, order=order)])
    assert torch.equal(labels, order)
    resumed = torch.cat([y for _, y in D.batches(ds, 4, order=order, start=1)])
    assert torch.equal(resumed, order[4:])
    images, _ = next(D.batches(ds, 4))
    assert images.dtype == torch.float32 and images.max() <= 1.0


def test_stimuli_are_seeded_balanced_and_split():
    images, labels, classes = shapes(4, image_size=16, seed=1)
    assert images.shape == (40, 3, 16, 16) and images.dtype == torch.uint8
    assert classes == list(SHAPE_CLASSES)
    assert torch.bincount(labels).tolist() == [4] * 10
    again, _, _ = shapes(4, image_size=16, seed=1)
    val, _, _ = shapes(4, image_size=16, seed=1, split="val")
    assert torch.equal(images, again) and not torch.equal(images, val)
    assert D.load_split("stimuli", "val", stimuli_per_class=10).images.shape == (20, 3, 32, 32)


def test_a_cifar100_tree_with_three_classes_is_not_a_cifar100_run(tmp_path):
    """A CIFAR-100 tree holding 3 of 100 classes trained a 3-class run labelled cifar100."""
    write_tree(tmp_path / "cifar100-jpeg" / "train", classes=("apple", "bee", "cup"), per_class=4, size=32)
    with pytest.raises(D.DataError, match="holds 3 class folders; cifar100 has 100"):
        D.load_split("cifar100", "train", tmp_path, val_size=3)


def test_a_corrupt_torchvision_copy_is_named_and_no_download_is_claimed(tmp_path):
    """A corrupt cifar-100-python/ said 'the download failed' though none was tried."""
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(D.DatasetUnavailable, match="cifar-100-python is not a readable copy") as err:
        D.load_split("cifar100", "train", tmp_path)
    assert "download failed" not in str(err.value)
    with pytest.raises(D.DatasetUnavailable, match="no download was tried"):
        D.load_split("cifar10", "train", tmp_path / "empty")


def test_an_extracted_archive_honours_the_umask(tmp_path, monkeypatch):
    """The extracted tree was mode 0700 (mkdtemp) whatever the umask: a lab's shared cache
    was unreadable to colleagues."""
    import os
    import stat

    monkeypatch.setenv("GATTANET_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with _one_file_archive(archive):
        pass
    old = os.umask(0o027)
    try:
        target = D.extract_archive(archive)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    member = target / "cifar10-jpeg" / "train" / "a" / "ok.txt"  # the archive says 0644
    assert stat.S_IMODE(member.stat().st_mode) == 0o640
    assert stat.S_IMODE(member.parent.stat().st_mode) == 0o750
