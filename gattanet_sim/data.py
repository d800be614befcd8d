"""Image sets as uint8 tensors: found or downloaded once, decoded once, augmented on tensors.

Sources, by `--dataset`:

- ``cifar10`` / ``cifar100``: in the data root, the first of: torchvision's own download
  (``cifar-10-batches-py/``), a class-folder tree (``cifar10-jpeg/train/<class>/*.jpg``, as
  the shared JPEG copy), a ``.tar.gz`` of such a tree; else torchvision's download. With
  none of these, `DatasetUnavailable`.
- ``folder``: any class-folder tree ``ROOT/train/<class>/*`` (plus ``val/`` and ``test/``).
- ``imagenet``: ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` (or in ``ROOT/imagenet*/``),
  streamed: a `StreamedImageSet` lists the files and decodes each image when a batch needs it,
  never all in memory, with the standard transforms (resize 256 + centre crop 224 for
  evaluation, random resized crop + flip for training).

Splits: ``train``; ``val``, the tree's ``val/`` if it has one, else a per-class held-out
part of the training images (drawn with a fixed seed, the same for every run, so that every
model is selected on the same images); ``test``, the official test set or ``test/``.

Decoded images are cached as uint8 tensors in `cache_dir()` (``data/cache`` by default,
``$GATTANET_CACHE`` if set). ``GATTANET_OFFLINE=1`` never tries a download.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from gattanet_sim.io import atomic_save, honour_umask, honour_umask_dir, safe_load

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
VAL_SPLIT_SEED = 0
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")  # torchvision's order
CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


class DataError(ValueError):
    """Bad data: a missing root, an empty or corrupt tree. The message names the problem."""


class DatasetUnavailable(DataError):
    """No local copy of a dataset and no way to download it."""


@dataclass
class ImageSet:
    """Images (N, C, H, W) uint8, labels (N,) int64 and the class names, in label order."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def subset(self, index: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes, self.name)


@dataclass
class StreamedImageSet:
    """Image files listed, not decoded: too many to hold in memory (ImageNet), so `batches`
    decodes each one when needed, with the standard transforms to `image_size`.

    `resize` is the side the evaluation transform scales the short side to before the
    centre crop (256 for 224, the usual ratio).
    """

    samples: list[tuple[str, int]]
    classes: list[str]
    name: str = ""
    image_size: int = 224
    resize: int = 256

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)  # (N,)

    def subset(self, index: torch.Tensor) -> StreamedImageSet:
        if index.dtype == torch.bool:  # a mask, as ImageSet.subset accepts
            index = index.nonzero().flatten()
        samples = [self.samples[i] for i in index.tolist()]
        return StreamedImageSet(samples, self.classes, self.name, self.image_size, self.resize)

    def in_memory(self) -> ImageSet:
        """Every image decoded with the evaluation transform, as an ImageSet (for the
        experiment paradigms, which cut displays out of images in memory): subset first."""
        images = torch.stack([self.decode(i) for i in range(len(self))]) if len(self) else \
            torch.empty(0, 3, self.image_size, self.image_size, dtype=torch.uint8)  # (N, 3, S, S)
        return ImageSet(images, self.labels, self.classes, self.name)

    def decode(self, i: int, seed: int | None = None) -> torch.Tensor:
        """Image i as uint8 (3, S, S): the evaluation transform, or with `seed` the training
        augmentation drawn from that seed alone (the caller's global RNG is left as it was)."""
        from torchvision.transforms import v2

        image = _read_rgb(self.samples[i][0])  # (3, H, W) uint8
        if seed is None:
            resized = v2.Resize(self.resize, antialias=True)(image)  # (3, H', W'), short: resize
            return v2.CenterCrop(self.image_size)(resized).contiguous()  # (3, S, S)
        with torch.random.fork_rng(devices=[]):  # draws from the global RNG, so fork it
            torch.manual_seed(seed)
            cropped = v2.RandomResizedCrop(self.image_size, antialias=True)(image)  # (3, S, S)
            return v2.RandomHorizontalFlip()(cropped).contiguous()  # (3, S, S)


def default_root() -> Path:
    return Path(os.environ.get("GATTANET_DATA", "data"))


def cache_dir() -> Path:
    return Path(os.environ.get("GATTANET_CACHE", "data/cache"))


# --- finding and decoding -------------------------------------------------------------


def _class_dirs(tree: Path) -> list[Path]:
    return sorted(p for p in tree.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_class_tree(tree: Path) -> bool:
    return tree.is_dir() and bool(_class_dirs(tree))


def _tree_fingerprint(tree: Path) -> str:
    """Cheap identity of a tree: its path, file names, sizes and modification times."""
    h = hashlib.sha256(str(tree.resolve()).encode())
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            st = path.stat()
            h.update(f"{path.relative_to(tree)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _decode(path: Path, image_size: int | None) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if image_size is not None and img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot decode image {path}: {err}") from None


def _read_rgb(path: str | Path) -> torch.Tensor:
    """A file as uint8 RGB (3, H, W), decoded by PIL as `decode_tree` does (torchvision's own
    decoders are deprecated since 0.29); DataError naming the file if it cannot be read."""
    pixels = _decode(Path(path), None)  # (H, W, 3), read-only
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))  # (3, H, W) copy


def decode_tree(tree: Path, image_size: int | None = None, classes: list[str] | None = None) -> ImageSet:
    """Decode a class-folder tree into an ImageSet, cached by the tree's fingerprint.

    Grayscale and palette images become RGB; images must share one size unless
    `image_size` resizes them. `classes` fixes the label order (default: sorted folders).
    """
    tree = Path(tree)
    if not _is_class_tree(tree):
        raise DataError(f"{tree} is not a class-folder tree (expected {tree}/<class>/<images>)")
    names = classes or [p.name for p in _class_dirs(tree)]
    missing = [c for c in names if not (tree / c).is_dir()]
    if missing:
        raise DataError(f"{tree} lacks class folder(s): {', '.join(missing)}")
    cache = cache_dir() / f"tree-{_tree_fingerprint(tree)}-{image_size or 'native'}.pt"
    if cache.exists():
        stored = safe_load(cache)
        return ImageSet(stored["images"], stored["labels"], stored["classes"], tree.name)
    files = [(f, label) for label, c in enumerate(names) for f in sorted((tree / c).iterdir())
             if f.is_file() and not f.name.startswith(".")]
    if not files:
        raise DataError(f"{tree} holds no images")
    strangers = [f for f, _ in files if f.suffix.lower() not in IMAGE_SUFFIXES]
    if strangers:
        raise DataError(f"not an image file: {strangers[0]}")
    arrays = []
    # disable=None: a bar only on a terminal, so a log gets no carriage-return frames
    for path, _ in tqdm(files, desc=f"decoding {tree}", unit="img", leave=False, disable=None):
        arrays.append(_decode(path, image_size))
        if arrays[-1].shape != arrays[0].shape:
            raise DataError(
                f"image {path} is {arrays[-1].shape[1]}x{arrays[-1].shape[0]}, the first was "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; pass --image-size to resize"
            )
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    atomic_save({"images": images, "labels": labels, "classes": names}, cache)
    return ImageSet(images, labels, names, tree.name)


def extract_archive(archive: Path) -> Path:
    """Extract a .tar(.gz) once into the cache, refusing links, devices and escaping paths."""
    archive = Path(archive)
    st = archive.stat()
    target = cache_dir() / f"extracted-{archive.name.split('.')[0]}-{st.st_size}-{st.st_mtime_ns}"
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp", dir=target.parent))
    honour_umask_dir(tmp)
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if not (member.isfile() or member.isdir()):
                    raise DataError(f"archive {archive} holds a link or special file: {member.name}")
            tar.extractall(tmp, filter="data")
        for member in tmp.rglob("*"):  # the archive's modes -> what this user's umask allows
            if member.is_dir():
                honour_umask_dir(member)
            else:
                honour_umask(member)
    except BaseException as err:  # a bad archive, a refused member, an interrupt: no half tree
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, (tarfile.TarError, OSError)):
            raise DataError(f"cannot extract {archive}: {err}") from None
        raise
    (tmp / ".complete").touch()
    try:
        os.replace(tmp, target)
    except OSError:  # another process extracted the same archive first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / ".complete").exists():
            raise DataError(f"cannot move the extracted {archive} into {target}") from None
    return target


def _find_train_tree(root: Path) -> Path | None:
    """A `train/` class-folder tree at or one level below root (e.g. cifar10-jpeg/train)."""
    for candidate in [root / "train", *sorted(root.glob("*/train"))]:
        if _is_class_tree(candidate):
            return candidate
    return None


def _cifar_local(name: str, root: Path) -> Path | None:
    """A class-folder tree of CIFAR in root, extracting a matching archive if that is all."""
    def ours(path: Path) -> bool:  # "cifar10*" would also match a cifar100 copy
        return name != "cifar10" or not path.name.startswith("cifar100")

    for candidate in sorted(root.glob(f"{name}*/train")):
        if ours(candidate.parent) and _is_class_tree(candidate):
            return candidate.parent
    for archive in sorted(p for p in root.glob(f"{name}*.tar*") if ours(p)):
        tree = _find_train_tree(extract_archive(archive))
        if tree is not None:
            return tree.parent
    return None


def _cifar_torchvision(name: str, root: Path, train: bool, download: bool) -> ImageSet | None:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    if not (root / CIFAR_DIRS[name]).is_dir():
        if not download or os.environ.get("GATTANET_OFFLINE"):
            return None
        try:
            root.mkdir(parents=True, exist_ok=True)
            cls(str(root), train=train, download=True)
        except Exception:  # no network, a proxy error page, a refused write: all "unavailable"
            return None
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError:
        return None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
    return ImageSet(images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes), name)


def held_out(n_labels: torch.Tensor, val_size: int, num_classes: int) -> torch.Tensor:
    """Boolean mask of a per-class validation split: val_size // classes images per class."""
    per_class = val_size // num_classes
    g = torch.Generator().manual_seed(VAL_SPLIT_SEED)
    order = torch.randperm(len(n_labels), generator=g)
    mask = torch.zeros(len(n_labels), dtype=torch.bool)
    for c in range(num_classes):
        members = order[n_labels[order] == c]
        if per_class >= len(members):
            raise DataError(f"val size {val_size} leaves no training images of class {c}")
        mask[members[:per_class]] = True
    return mask


def load_split(
    dataset: str,
    split: str,
    root: Path | str | None = None,
    val_size: int = 5000,
    image_size: int | None = None,
    download: bool = True,
    stimuli_per_class: int = 200,
) -> ImageSet | StreamedImageSet:
    """Load one split of a dataset: an ImageSet, or for imagenet a StreamedImageSet (see the
    module docstring; imagenet ignores `val_size`: its val/ is the validation split)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    root = Path(root) if root is not None else default_root()
    if dataset == "stimuli":
        from gattanet_sim.stimuli import search

        n = stimuli_per_class if split == "train" else max(1, stimuli_per_class // 5)
        images, labels, classes = search(n, image_size or 32, seed=0, split=split)
        return ImageSet(images, labels, classes, "stimuli")
    if dataset in CIFAR_DIRS:
        return _split(_load_cifar(dataset, root, split, download), split, val_size, dataset, root)
    if dataset == "folder":
        if not root.is_dir():
            raise DataError(f"data root {root} does not exist")
        tree = _find_train_tree(root)
        if tree is None:
            raise DataError(f"no class-folder tree {root}/train/<class>/ found")
        if split == "test" or (split == "val" and _is_class_tree(tree.parent / "val")):
            named = tree.parent / split
            if not _is_class_tree(named):
                raise DataError(f"{tree.parent} has no {split}/ folder")
            train_classes = [p.name for p in _class_dirs(tree)]
            return decode_tree(named, image_size, train_classes)
        full = decode_tree(tree, image_size)
        if split == "train" and _is_class_tree(tree.parent / "val"):
            return full
        return _split(full, split, val_size, dataset, root)
    if dataset == "imagenet":
        return _load_imagenet(root, split, image_size or 224)
    raise DataError(
        f"unknown dataset {dataset!r}; choose from cifar10, cifar100, folder, imagenet, stimuli"
    )


def _list_tree(tree: Path, labels: dict[str, int]) -> list[tuple[str, int]]:
    """(path, label) of every file in tree/<class>/, sorted by class then name.

    Uses scandir's cached file types: a million files, no stat each.
    """
    files = []
    for c, label in labels.items():
        with os.scandir(tree / c) as entries:
            found = sorted(e.path for e in entries if e.is_file() and not e.name.startswith("."))
        files += [(f, label) for f in found]
    if not files:
        raise DataError(f"{tree} holds no images")
    stranger = next((f for f, _ in files if Path(f).suffix.lower() not in IMAGE_SUFFIXES), None)
    if stranger is not None:
        raise DataError(f"not an image file: {stranger}")
    return files


def _load_imagenet(root: Path, split: str, image_size: int) -> StreamedImageSet:
    """List an ImageNet-layout tree (root or root/imagenet*/) as a StreamedImageSet."""
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist")
    candidates = [root, *sorted(root.glob("imagenet*"))]
    base = next((c for c in candidates if _is_class_tree(c / "train")), None)
    if base is None:
        raise DataError(f"no ImageNet tree {root}/train/<class>/ (or {root}/imagenet*/train/)")
    classes = [p.name for p in _class_dirs(base / "train")]
    tree = base / split
    if not _is_class_tree(tree):
        raise DataError(f"{base} has no {split}/<class>/ folders (ImageNet's {split} images sorted "
                        "into class folders named as in train/)")
    names = [p.name for p in _class_dirs(tree)]
    unknown = [c for c in names if c not in classes]
    if unknown:
        raise DataError(f"{tree} has class folder(s) not in {base / 'train'}: "
                        f"{', '.join(unknown[:5])}")
    labels = {c: label for label, c in enumerate(classes) if c in names}  # by train's label
    files = _list_tree(tree, labels)
    resize = round(image_size * 256 / 224)
    return StreamedImageSet(files, classes, "imagenet", image_size, resize)


CIFAR_CLASS_COUNTS = {"cifar10": 10, "cifar100": 100}


def _whole_cifar(data: ImageSet, name: str, where: Path) -> ImageSet:
    """A tree labelled cifar10/cifar100 must hold every class: 3 of 100 would train a 3-class
    run under the dataset's name."""
    if len(data.classes) != CIFAR_CLASS_COUNTS[name]:
        raise DataError(f"{where} holds {len(data.classes)} class folders; {name} has "
                        f"{CIFAR_CLASS_COUNTS[name]} (for a subset of classes use --dataset folder)")
    return data


def _load_cifar(name: str, root: Path, split: str, download: bool) -> ImageSet:
    train = split != "test"
    found = _cifar_torchvision(name, root, train, download=False)
    if found is None:
        tree = _cifar_local(name, root) if root.is_dir() else None
        if tree is not None:
            if not train:
                if _is_class_tree(tree / "test"):
                    return _whole_cifar(decode_tree(tree / "test"), name, tree / "test")
                raise DatasetUnavailable(f"{tree} holds no test split of {name}")
            return _whole_cifar(decode_tree(tree / "train"), name, tree / "train")
        if (root / CIFAR_DIRS[name]).is_dir():  # torchvision's copy is there but does not load
            raise DatasetUnavailable(f"{root / CIFAR_DIRS[name]} is not a readable copy of {name} "
                                     "(corrupt or incomplete): remove it to download it again")
        found = _cifar_torchvision(name, root, train, download=download)
    if found is None:
        tried = download and not os.environ.get("GATTANET_OFFLINE")
        raise DatasetUnavailable(
            f"no copy of {name} in {root} (torchvision download, class-folder tree or .tar.gz)"
            + (" and the download failed" if tried else "; no download was tried (offline)")
        )
    return found


def _split(full: ImageSet, split: str, val_size: int, dataset: str, root: Path) -> ImageSet:
    """Cut the held-out validation split out of a training set (no-op for test)."""
    if split == "test":
        return full
    if val_size <= 0:
        if split == "val":
            raise DataError("--val-size 0 leaves no validation split")
        return full
    mask = held_out(full.labels, val_size, len(full.classes))
    return full.subset(mask if split == "val" else ~mask)


# --- batches and augmentation ---------------------------------------------------------


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random pad-and-crop and horizontal flip of a batch, on tensors: (B, C, H, W) -> same."""
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p), zero padding
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)).to(images.device)  # (B, H)
    cols = dx[:, None] + torch.arange(w)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols).to(images.device)
    batch = torch.arange(b, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


def balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of n images, as many of each class as possible, drawn with `seed`: a
    class-folder tree is sorted by class, so its first n images would be one or two classes.

    Round robin over the classes, each in its own shuffled order (a class that runs out
    leaves its turn to the others); sorted, so the subset keeps the set's order.
    """
    classes, label_index = torch.unique(labels, return_inverse=True)  # (K,), (N,)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))  # (N,)
    by_class = order[torch.sort(label_index[order], stable=True).indices]  # shuffled within class
    counts = torch.bincount(label_index, minlength=len(classes))  # (K,)
    starts = torch.cumsum(counts, 0) - counts  # (K,)
    rank = torch.arange(len(labels)) - starts[label_index[by_class]]  # position within its class
    turn = rank * len(classes) + label_index[by_class]  # round-robin turn of each image
    return by_class[torch.argsort(turn)[:n]].sort().values

def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of an epoch: a function of (seed, epoch) alone, so resumable."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def item_seed(initial_seed: int, position: int) -> int:
    """The augmentation seed of the item at `position` of an epoch's order: a function of the
    generator's seed and the position alone, so a resumed epoch sees the same images."""
    return (initial_seed * 1_000_003 + position) % 2**63


def loader_workers() -> int:
    """Decoding processes: $GATTANET_WORKERS if a number, else min(8, CPUs)."""
    value = os.environ.get("GATTANET_WORKERS", "").strip()
    return int(value) if value.isdigit() else min(8, os.cpu_count() or 1)


class _Decoded(Dataset):
    """Map-style view of a StreamedImageSet whose keys are (i, seed) pairs (seed None: eval)."""

    def __init__(self, data: StreamedImageSet):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int | None]) -> tuple[torch.Tensor, int]:
        i, seed = key
        return self.data.decode(i, seed), self.data.samples[i][1]  # (3, S, S) uint8, label


class _SeededBatches:
    """Batch sampler: lists of (i, seed) over index[first:], built lazily (a million items)."""

    def __init__(self, index: torch.Tensor, batch_size: int, first: int, initial_seed: int | None,
                 shard: tuple[int, int] = (0, 1)):
        self.index = index
        self.shard = shard  # (rank, world): this process decodes every world-th item of a batch
        self.batch_size = batch_size
        self.first = first  # position in index of the first item: resuming skips batches
        self.initial_seed = initial_seed  # None: no augmentation

    def __len__(self) -> int:
        return max(0, -(-(len(self.index) - self.first) // self.batch_size))

    def __iter__(self) -> Iterator[list[tuple[int, int | None]]]:
        for lo in range(self.first, len(self.index), self.batch_size):
            chunk = self.index[lo : lo + self.batch_size].tolist()
            seeds = ([None] * len(chunk) if self.initial_seed is None else
                     [item_seed(self.initial_seed, lo + k) for k in range(len(chunk))])
            rank, world = self.shard
            yield list(zip(chunk, seeds))[rank::world]


def _streamed_batches(
    data: StreamedImageSet,
    batch_size: int,
    device: torch.device,
    index: torch.Tensor,
    generator: torch.Generator | None,
    start: int,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """`batches` for a StreamedImageSet: decoded in DataLoader workers, seeded per item."""
    initial_seed = generator.initial_seed() if generator is not None else None  # never drawn
    loader = DataLoader(
        _Decoded(data),
        batch_sampler=_SeededBatches(index, batch_size, start * batch_size, initial_seed, shard),
        num_workers=loader_workers(),
        pin_memory=device.type == "cuda",
        # its own generator: the loader's worker seed would otherwise come from the global RNG
        generator=torch.Generator().manual_seed(0),
    )
    stream = iter(loader)
    while True:
        try:
            images, labels = next(stream)  # (B, 3, S, S) uint8, (B,) int64
        except StopIteration:
            return
        except DataError as err:  # from a worker: its message holds the worker's traceback
            raise DataError(str(err).strip().splitlines()[-1].removeprefix("gattanet_sim.data.")
                            .removeprefix("DataError: ")) from None
        images = images.to(device, non_blocking=True).float().div_(255)  # (B, 3, S, S)
        yield images, labels.to(device, non_blocking=True)


def batches(
    data: ImageSet | StreamedImageSet,
    batch_size: int,
    device: torch.device | str = "cpu",
    order: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    start: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images in [0, 1] float (B, C, H, W), labels (B,)) on `device`.

    `order` shuffles (see `epoch_order`); `generator` turns augmentation on; `start` skips
    the first batches (resuming within an epoch); `shard` (rank, world) keeps every
    world-th item of each batch, augmented as in the whole batch (so several processes
    together see what one process sees). A StreamedImageSet is decoded by DataLoader
    workers; its augmentation is seeded per item by `item_seed`, from the generator's
    initial seed without drawing from it.
    """
    index = order if order is not None else torch.arange(len(data))
    if isinstance(data, StreamedImageSet):
        yield from _streamed_batches(data, batch_size, torch.device(device), index, generator,
                                     start, shard)
        return
    rank, world = shard
    for i in range(start * batch_size, len(index), batch_size):
        idx = index[i : i + batch_size]
        images = data.images[idx]  # (B, C, H, W) uint8
        if generator is not None:
            images = augment(images, generator)  # draws for the whole batch, on every process
        images, idx = images[rank::world], idx[rank::world]  # (B / world, C, H, W)
        yield images.to(device).float().div_(255), data.labels[idx].to(device)
