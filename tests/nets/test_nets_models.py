"""Model shapes and parameter counts."""
import pytest
import torch

from nets.models import build_model, count_parameters


@pytest.mark.parametrize("name,shape,kw", [
    ("mlp4_bn", (1, 28, 28), {}), ("mlp20", (1, 28, 28), {"init": "bad"}), ("mlp256", (1, 28, 28), {}),
    ("vgg11", (3, 32, 32), {"width_mult": 0.125}), ("vgg11", (1, 28, 28), {"width_mult": 0.125}),
    ("resnet56", (3, 32, 32), {"depth": 8}), ("resnet56", (1, 28, 28), {"depth": 8})])
def test_output_shapes(name, shape, kw):
    m = build_model(name, in_shape=shape, seed=0, **kw).eval()
    assert m(torch.randn(3, *shape)).shape == (3, 10)


def test_parameter_counts():
    # 4 hidden layers of 512 with BN: 784·512+512 + 3(512·512+512) + 4·2·512 + 512·10+10
    assert count_parameters(build_model("mlp4_bn")) == 784 * 512 + 512 + 3 * (512 * 512 + 512) + 8 * 512 + 5130
    # MLP-256 (2 hidden layers): 784·256+256 + 256·256+256 + 256·10+10
    assert count_parameters(build_model("mlp256")) == 784 * 256 + 256 + 256 * 256 + 256 + 2570
    n56 = count_parameters(build_model("resnet56", in_shape=(3, 32, 32)))
    assert 0.85e6 < n56 < 0.86e6          # He et al. 2016 report 0.85M
    n11 = count_parameters(build_model("vgg11", in_shape=(3, 32, 32)))
    assert 9.2e6 < n11 < 9.3e6            # VGG-11-BN CIFAR variant, classifier 512→10


def test_seeded_init_and_good_bad():
    a = build_model("mlp20", seed=1)
    b = build_model("mlp20", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    good = build_model("mlp20", init="good", seed=0).net[1].weight
    bad = build_model("mlp20", init="bad", seed=0).net[3].weight
    # He std for fan-in 784 is sqrt(2/784) = 0.0505; bad is 0.05 at fan-in 256 vs He 0.088
    assert abs(good.std().item() - (2 / 784) ** 0.5) < 0.002
    assert abs(bad.std().item() - 0.05) < 0.002
    with pytest.raises(ValueError, match="unknown model"):
        build_model("nope")
