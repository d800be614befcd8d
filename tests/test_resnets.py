"""ResNet backbones as visual areas: the model's contract, torchvision's forward, geometry, CLIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import resnet as tv

from gattanet_sim import build_model, record, train
from gattanet_sim.data import balanced_subset, load_split
from gattanet_sim.resnets import IMAGENET_MEAN, IMAGENET_STD


def resnet(name: str = "resnet18", alpha: float = 0.0, **options):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, key_dim=4, **options).double().eval()
    with torch.no_grad():
        for a in (model.attention.alpha.values() if model.attention is not None else []):
            a.fill_(alpha)
    return model


@pytest.mark.parametrize("name,options", [("resnet18", {}), ("resnet50", {}),
                                          ("resnet18", {"per_block": True, "mode": "cascade"})])
def test_zero_alpha_every_step_is_the_backbone_and_one_step_is_the_backbone(name, options):
    model = resnet(name, **options)
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    timesteps = model.arrival_steps + 1
    with torch.no_grad():
        plain = model.backbone(x)
        logits = model.simulate(x, timesteps).logits  # (T, B, 5)
        for t in range(model.arrival_steps - 1, timesteps):
            assert torch.allclose(logits[t], plain, atol=1e-10), t
        if model.mode == "sweep":
            strong = resnet(name, alpha=3.0, **options)
            assert torch.allclose(strong(x, timesteps=1), plain, atol=1e-10)
            assert not torch.allclose(strong(x, timesteps=2), plain, atol=1e-4)  # the gain acts


def test_areas_reproduce_torchvision_forward_from_a_weights_file(tmp_path):
    """Cut into areas, a ResNet started from a torchvision weights file computes torchvision's
    own forward pass (ImageNet stem, 1000 classes), with or without per-step batch norm."""
    torch.manual_seed(1)
    reference = tv.resnet18(num_classes=1000).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    x = torch.rand(2, 3, 64, 64)
    expected = reference((x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
                         / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
    for per_block in (False, True):
        model = build_model("resnet18", num_classes=1000, stem="imagenet", image_size=64,
                            weights=str(tmp_path / "resnet18.pth"), per_block=per_block).eval()
        with torch.no_grad():
            assert torch.allclose(model.backbone(x), expected, atol=1e-5)
            assert torch.allclose(model(x, timesteps=1), expected, atol=1e-5)


def test_receptive_fields_match_the_gradient_of_a_central_unit():
    """Each area's field (size, centres) is where a central unit's gradient is non-zero."""
    model = build_model("resnet18", num_classes=5, stem="cifar", image_size=64, attention=False).eval()
    fields, sides = model.backbone.receptive_fields(), model.backbone.sides()
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    h = model.backbone.retina(x)
    for name, area in list(model.areas.items())[:3]:  # stem, layer1, layer2: fields inside 64 px
        h = area.activate(area.drive(h))
        i = sides[name] // 2
        (grad,) = torch.autograd.grad(h[0, :, i, i].sum(), x, retain_graph=True)
        cols = np.nonzero(grad[0].abs().sum((0, 1)).numpy())[0]
        assert cols.max() - cols.min() + 1 == fields[name].size, name
        assert (cols.max() + cols.min() + 1) / 2 == fields[name].start + i * fields[name].jump, name
        assert h.shape[-1] == sides[name]
    assert [fields[n].size for n in ("stem", "layer1", "layer2")] == [3, 11, 25]
    imagenet = build_model("resnet50", num_classes=5, stem="imagenet", image_size=224)
    assert imagenet.backbone.sides()["layer4"] == 7 and imagenet.backbone.receptive_fields()["stem"].size == 11


def test_attention_areas_choose_what_the_region_reads_and_gains():
    model = resnet("resnet18", alpha=1.0, attention_areas=["layer4", "layer2"])
    assert list(model.attention.query) == ["layer2", "layer4"] == list(model.attention.gained)
    traj = model.simulate(torch.rand(2, 3, 32, 32, dtype=torch.float64), 2)
    assert sorted(traj.gain) == ["layer2", "layer4"] and sorted(traj.area_queries) == ["layer2", "layer4"]
    with pytest.raises(ValueError, match="attention areas"):
        build_model("resnet18", num_classes=5, attention_areas=["V1"])
    toy = build_model("toy", num_classes=3, attention_areas=["V1", "readout"], readout_gain=False)
    assert list(toy.attention.gained) == ["V1"]


def test_train_limit_is_class_balanced_and_seeded():
    labels = torch.arange(10).repeat_interleave(50)  # sorted by class, as a class-folder tree
    chosen = balanced_subset(labels, 95, seed=0)
    assert len(chosen) == len(set(chosen.tolist())) == 95
    assert sorted(torch.bincount(labels[chosen]).tolist()) == [9] * 5 + [10] * 5
    assert torch.equal(chosen, balanced_subset(labels, 95, seed=0))
    assert not torch.equal(chosen, balanced_subset(labels, 95, seed=1))
    few = torch.tensor([0] * 40 + [1] * 3)  # a small class gives its turn to the others
    assert torch.bincount(few[balanced_subset(few, 20, 0)]).tolist() == [17, 3]


def write_tree(root, classes: int, per_class: int, size: tuple[int, int], splits=("train",)):
    rng = np.random.default_rng(0)
    for split in splits:
        for c in range(classes):
            folder = root / split / f"class{c:03d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_resnet18_trains_an_epoch_on_a_cifar100_tree_and_records(tmp_path, monkeypatch):
    monkeypatch.setenv("GATTANET_CACHE", str(tmp_path / "cache"))
    write_tree(tmp_path / "data" / "cifar100-png", 100, 3, (32, 32))
    out = tmp_path / "run"
    assert train.main(["--model", "resnet18", "--dataset", "cifar100", "--data-root", str(tmp_path / "data"),
                       "--val-size", "100", "--train-limit", "40", "--batch-size", "20", "--epochs", "1",
                       "--attention-areas", "layer3,layer4,readout", "--quiet", "--out-dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_images"] == 40 and summary["val_images"] == 100
    assert summary["config"]["model"] == "resnet18" and len(summary["val_accuracy"]) == 2
    assert record.main([str(out), "--limit", "4", "--units", "8", "--signals", "activity,gain",
                        "--out", str(tmp_path / "rec.nc")]) == 0
    from gattanet_sim.recording import open_recording

    with open_recording(tmp_path / "rec.nc") as rec:
        assert set(rec.region.values) == {"stem", "layer1", "layer2", "layer3", "layer4", "readout"}
        assert rec.sizes["presentation"] == 4 and float(rec.rf_size.max()) > 32  # layer4 sees it all
        gained = rec.gain.sel(time_bin=1).groupby("region").std(...)
        assert float(gained.sel(region="stem")) == 0 and float(gained.sel(region="layer4")) > 0


def test_resnet50_trains_an_epoch_on_a_folder_tree_at_224(tmp_path, monkeypatch):
    monkeypatch.setenv("GATTANET_CACHE", str(tmp_path / "cache"))
    write_tree(tmp_path / "tree", 2, 3, (250, 200), splits=("train", "val"))
    out = tmp_path / "run"
    assert train.main(["--model", "resnet50", "--dataset", "folder", "--data-root", str(tmp_path / "tree"),
                       "--image-size", "224", "--batch-size", "6", "--epochs", "1", "--quiet",
                       "--out-dir", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["stem"] is None and json.loads((out / "summary.json").read_text())["train_images"] == 6


def test_imagenet_tree_is_streamed_in_training(tmp_path, monkeypatch):
    monkeypatch.setenv("GATTANET_WORKERS", "0")
    write_tree(tmp_path / "imagenet", 3, 4, (80, 60), splits=("train", "val"))
    train_set = load_split("imagenet", "train", tmp_path, image_size=64)
    assert not hasattr(train_set, "images") and train_set.image_size == 64
    out = tmp_path / "run"
    assert train.main(["--model", "resnet18", "--dataset", "imagenet", "--data-root", str(tmp_path),
                       "--image-size", "64", "--stem", "imagenet", "--batch-size", "6", "--epochs", "1",
                       "--train-limit", "6", "--quiet", "--out-dir", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["val_images"] == 12


@pytest.mark.parametrize("argv,needle", [
    (["--model", "resnet18", "--no-batch-norm"], "toy model only"),
    (["--stem", "imagenet"], "ResNets only"),
    (["--model", "resnet18", "--weights", "nowhere.pth"], "no such file"),
    (["--attention-areas", "V1,,V2"], "comma-separated names"),
])
def test_resnet_arguments_are_checked(argv, needle, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        train.main([*argv, "--out-dir", str(tmp_path / "x")])
    assert exit_.value.code == 2 and needle in capsys.readouterr().err


def test_a_file_that_is_not_torchvision_weights_is_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert train.main(["--model", "resnet18", "--dataset", "stimuli", "--weights", str(junk),
                       "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a torchvision weights file" in err[0]
    assert not (tmp_path / "run").exists()


def test_every_step_normalises_with_its_own_statistics_inside_torchvision_blocks():
    """Blocks call their norms without a timestep; the area points them at the current one,
    so with rows that differ, step 1 (alpha 0: no gain) differs from step 0 only by them."""
    from gattanet_sim.areas import StepBatchNorm

    model = resnet("resnet18", norm_steps=2)
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        same = model.simulate(x, 2).logits
        assert torch.allclose(same[0], same[1], atol=1e-10)
        for m in model.modules():
            if isinstance(m, StepBatchNorm):
                m.running_var[1].uniform_(0.5, 2.0)
        moved = model.simulate(x, 2).logits
    assert torch.allclose(moved[0], same[0], atol=1e-10) and not torch.allclose(moved[1], same[1], atol=1e-3)
