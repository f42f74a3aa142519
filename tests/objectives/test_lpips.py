"""LPIPS: loads only local weight files (weights_only), is a proper distance, and is off with one warning."""

import warnings

import pytest
import torch

import system.objectives.lpips as lpips_module
from system.objectives.lpips import LPIPS, load_lpips


@pytest.fixture
def weight_files(tmp_path):
    """Random weights written in the two real on-disk layouts: torchvision VGG16 and LPIPS v0.1 linear."""
    torch.manual_seed(0)
    net = LPIPS()
    backbone = {f"features.{k}": torch.randn_like(v) * 0.1 for k, v in net.features.state_dict().items()}
    backbone["classifier.0.weight"] = torch.zeros(4, 4)   # torchvision files carry the classifier too
    linear = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(backbone, tmp_path / "vgg16.pth")
    torch.save(linear, tmp_path / "vgg.pth")
    return tmp_path / "vgg16.pth", tmp_path / "vgg.pth", backbone, linear


def test_loaded_weights_are_used_and_distance_properties_hold(weight_files):
    backbone_path, linear_path, backbone, linear = weight_files
    metric = load_lpips(str(backbone_path), str(linear_path))
    assert torch.equal(metric.features[0].weight, backbone["features.0.weight"])
    assert torch.equal(metric.linear[4], linear["lin4.model.1.weight"])
    x, y = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    assert torch.allclose(metric(x, x), torch.zeros(3), atol=1e-6)
    d_xy, d_yx = metric(x, y), metric(y, x)
    assert (d_xy > 0).all()
    torch.testing.assert_close(d_xy, d_yx)
    # closer images are closer: a slightly perturbed x is nearer to x than an unrelated image
    assert (metric(x, (x + 0.02 * torch.randn_like(x)).clamp(0, 1)) < d_xy).all()
    # usable as a loss: gradient flows to the input, never into the frozen metric
    x.requires_grad_(True)
    metric(x, y).sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is None for p in metric.parameters())


def test_wrong_files_name_the_file_and_key(weight_files, tmp_path):
    backbone_path, linear_path, backbone, linear = weight_files
    del linear["lin2.model.1.weight"]
    torch.save(linear, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match=r"broken\.pth.*lin2\.model\.1\.weight"):
        load_lpips(str(backbone_path), str(tmp_path / "broken.pth"))
    with pytest.raises(ValueError, match=r"vgg\.pth.*features\.0\.weight"):
        load_lpips(str(linear_path), str(linear_path))   # linear weights given as the backbone
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        load_lpips(str(tmp_path / "garbage.pth"), str(linear_path))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_lpips(str(tmp_path / "missing.pth"), str(linear_path))


def test_without_weights_lpips_is_off_and_warns_once(monkeypatch):
    monkeypatch.setattr(lpips_module, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_lpips("", "") is None
        assert load_lpips("", "") is None
    assert sum("LPIPS is off" in str(w.message) for w in caught) == 1
