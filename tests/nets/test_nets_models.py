"""Model shapes and parameter counts."""
import pytest
import torch

from nets.models import build_model, check_model_kwargs, count_parameters, model_options


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


@pytest.mark.parametrize("name,kw,match", [
    ("vgg11", dict(width_mult=0), r"width_mult must be a finite number > 0, got 0"),
    ("vgg11", dict(width_mult=-1.0), r"width_mult must be a finite number > 0"),
    ("vgg11", dict(width_mult=float("nan")), r"width_mult must be a finite number > 0"),
    ("vgg11", dict(width=8), r"model 'vgg11' has no option\(s\) \['width'\]; its options are width_mult"),
    ("vgg11", dict(cfg=[8, "M", 0]), r"cfg must be a non-empty list of channel counts >= 1"),
    ("resnet56", dict(depth=2), r"depth must be 6k\+2 with k >= 1"),
    ("resnet56", dict(depth=-4), r"depth must be 6k\+2 with k >= 1"),
    ("resnet56", dict(depth=9), r"depth must be 6k\+2"),
    ("resnet56", dict(depth=8, base_width=0), r"base_width must be an integer >= 1, got 0"),
    ("mlp20", dict(init="bad", bad_std=0), r"bad_std must be a finite number > 0, got 0"),
    ("mlp20", dict(init="bad", bad_std=-0.1), r"bad_std must be a finite number > 0"),
    ("mlp20", dict(init="worse"), r"init must be 'default', 'good' or 'bad'"),
    ("mlp4_bn", dict(width=0), r"width must be an integer >= 1, got 0"),
    ("mlp4_bn", dict(depth=-1), r"depth must be an integer >= 1, got -1"),
    ("mlp256", dict(width=2.5), r"width must be an integer >= 1"),
    ("mlp256", dict(batch_norm=True), r"has no option\(s\) \['batch_norm'\]"),
])
def test_bad_model_options_are_rejected(name, kw, match):
    with pytest.raises(ValueError, match=match):
        check_model_kwargs(name, kw)
    with pytest.raises(ValueError, match=match):           # the builders run the same checks
        build_model(name, in_shape=(3, 32, 32), **kw)


def test_model_options_follow_builder_signatures():
    assert model_options("vgg11") == {"width_mult": 1.0, "batch_norm": True, "cfg": None}
    assert model_options("resnet56") == {"depth": 56, "base_width": 16}
    assert model_options("mlp20")["init"] == "good" and model_options("mlp4_bn")["init"] == "default"
    # every option named there really is accepted, and smallest valid values build
    m = build_model("resnet56", in_shape=(3, 32, 32), depth=8, base_width=1)
    assert len(m.blocks) == 3
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    v = build_model("vgg11", in_shape=(1, 28, 28), width_mult=1e-3, batch_norm=False, cfg=[4, "M", 8, "M"])
    assert v(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert build_model("mlp256", depth=1, width=1, init="bad", bad_std=1.0).net[1].weight.shape == (1, 784)


def test_cli_train_with_bad_model_option_is_a_clear_error(tiny_root, capsys):
    """`python -m nets train --model vgg11 --width 8` used to end in a raw TypeError traceback."""
    from nets.__main__ import main
    rc = main(["train", "--model", "vgg11", "--width", "8", "--lr", "0.1", "--batch-size", "16",
               "--data-root", str(tiny_root), "--train-size", "100", "--val-size", "20", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "error:" in err and "'vgg11' has no option(s) ['width']" in err and "width_mult" in err
    assert "Traceback" not in err
