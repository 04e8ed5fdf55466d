import pytest
import torch

from segue_cli.nn.generator import GeneratorConfig, SegueGenerator, count_parameters

EPS = 8 / 255


@pytest.fixture
def generator() -> SegueGenerator:
    torch.manual_seed(0)
    return SegueGenerator(GeneratorConfig())


def test_parameter_count_matches_paper_scale(generator):
    paper_generator = SegueGenerator(GeneratorConfig(pattern_grid=0))
    assert 80_000 < count_parameters(paper_generator) < 130_000
    config = generator.config
    pattern_layer = (config.pattern_hidden + 1) * 3 * config.pattern_grid**2  # the code features are fixed buffers
    assert count_parameters(generator) == count_parameters(paper_generator) + pattern_layer


def test_code_pattern_makes_codes_differ_on_the_same_image():
    torch.manual_seed(0)
    model = SegueGenerator(GeneratorConfig()).eval()
    image = torch.rand(1, 3, 112, 112).expand(2, -1, -1, -1)
    with torch.no_grad():
        delta = model.perturbation(image, [3, 40000], EPS)
    # Different codes: different perturbations, far beyond numerical noise.
    assert (delta[0] - delta[1]).abs().mean() > 0.1 * EPS


def test_label_codes_get_unrelated_full_strength_patterns():
    """Labels 0..9 share 12 of 16 code bits; their patterns must still be unrelated (what
    makes them separable) and strong (weak ones are what the attacker ignored)."""
    torch.manual_seed(0)
    model = SegueGenerator(GeneratorConfig()).eval()
    image = torch.rand(1, 3, 112, 112).expand(10, -1, -1, -1)
    with torch.no_grad():
        delta = model.perturbation(image, list(range(10)), EPS)
    correlation = torch.corrcoef(delta.flatten(1)).abs().fill_diagonal_(0)
    assert correlation.mean() < 0.25
    assert delta.abs().mean() > 0.5 * EPS


def test_checkpoints_without_code_pattern_still_load():
    assert GeneratorConfig.from_dict({"code_bits": 16, "base_channels": 8, "residual_blocks": 4}).pattern_grid == 0


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
