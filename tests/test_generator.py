import pytest
import torch

from segue_cli.nn.generator import GeneratorConfig, SegueGenerator, count_parameters

EPS = 8 / 255


@pytest.fixture
def generator() -> SegueGenerator:
    torch.manual_seed(0)
    return SegueGenerator(GeneratorConfig())


def test_parameter_count_matches_paper_scale(generator):
    assert 80_000 < count_parameters(generator) < 130_000


@pytest.mark.parametrize("height,width", [(32, 32), (33, 47), (112, 112), (61, 128), (224, 97), (1024, 40)])
def test_output_has_input_size_and_is_bounded(generator, height, width):
    images = torch.rand(2, 3, height, width)
    with torch.no_grad():
        delta = generator.perturbation(images, [3, 40000], EPS)
        protected = generator.protect(images, [3, 40000], EPS)
    assert delta.shape == images.shape
    assert delta.abs().max() <= EPS
    assert protected.min() >= 0 and protected.max() <= 1
    assert (protected - images).abs().max() <= EPS + 1e-6


def test_every_parameter_gets_a_gradient(generator):
    generator.train()
    images = torch.rand(3, 3, 36, 44)
    delta = generator.perturbation(images, [1, 2, 65535], EPS)
    delta.pow(2).sum().backward()
    missing = [n for n, p in generator.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or p.grad.abs().sum() == 0]
    assert missing == []


def test_code_changes_the_perturbation(generator):
    generator.eval()
    images = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        a = generator.perturbation(images, [1], EPS)
        b = generator.perturbation(images, [2], EPS)
    assert (a - b).abs().max() > 1e-5


def test_single_code_broadcasts_over_batch(generator):
    generator.eval()
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        together = generator.perturbation(images, [9], EPS)
        alone = generator.perturbation(images[2:3], [9], EPS)
    torch.testing.assert_close(together[2:3], alone, atol=1e-6, rtol=0)
