"""The identity cloak's optimisation of one face region (``IdentityCloak.cloak`` calls
:func:`optimise`): signed-gradient steps on a luminance grid through the training
distortion layer, each network's crop jittered, the reach per pixel optionally shaped by
the face's texture (:func:`contrast`), LowKey's smoothed copy (:func:`smoothed`). The
module docstring of ``photo/cloak.py`` says why each piece is there."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..faces.networks import FACE_NETWORKS

if TYPE_CHECKING:
    import numpy as np

    from .cloak import IdentityCloak


def optimise(cloak: IdentityCloak, clean_u8: Any, start_u8: Any, matrices: dict[str, Any], epsilon: float,
              reference: dict[str, Any] | None, toward: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, float]]:
    """(the cloaked region, H x W x 3 uint8; each network's descriptor's cosine to its reference)."""
    import torch
    import torch.nn.functional as F

    from ..nn import distortions
    from ..nn.delta import upsample

    config = cloak.config
    clean = clean_u8.permute(2, 0, 1)[None].float() / 255
    start = start_u8.permute(2, 0, 1)[None].float() / 255
    height, width = clean.shape[-2:]
    grid = (max(8, min(150, round(height / config.grid_divisor))), max(8, min(150, round(width / config.grid_divisor))))
    low, high = (clean - epsilon).clamp(0, 1), (clean + epsilon).clamp(0, 1)
    rng = torch.Generator().manual_seed(config.seed)

    def descriptors(photo: Any, gain: Any = None, maps: dict[str, Any] = matrices) -> dict[str, Any]:
        return {name: net.unit_descriptors(photo * 255.0, maps[name], gain if name == "dlib" else None)
                for name, net in cloak.nets.items()}

    def jittered() -> dict[str, Any]:
        """Each crop map moved and scaled at random, by up to ``config.jitter`` of its side."""
        if config.jitter == 0:
            return matrices
        moved = {}
        for name, matrix in matrices.items():
            side = FACE_NETWORKS[name].input_size
            shift, scale = (torch.rand(2, generator=rng) * 2 - 1) * config.jitter * side, torch.rand(1, generator=rng)
            linear = matrix[..., :2] * (1 + (scale * 2 - 1) * config.jitter)
            centre = torch.tensor([(side - 1) / 2, (side - 1) / 2], dtype=matrix.dtype)
            # keep the crop's centre where it was, then move it by ``shift`` crop pixels
            offset = matrix[..., 2] + (matrix[..., :2] - linear) @ centre + linear @ shift.to(matrix.dtype)
            moved[name] = torch.cat([linear, offset[..., None]], dim=-1)
        return moved

    def objective(seen: dict[str, Any]) -> Any:
        """The mean over the networks of cos(seen, own reference) - cos(seen, target)."""
        terms = [(seen[n] * references[n]).sum() - (0 if targets is None else (seen[n] * targets[n]).sum()) for n in seen]
        return terms[0] if len(terms) == 1 else torch.stack(terms).mean()

    keep_colour = config.split == "keep-colour"
    if keep_colour:  # the room all three channels share, so R-G and B-G never change
        room_low, room_high = (low - start).amax(1, keepdim=True), (high - start).amin(1, keepdim=True)

    reach_map = None if config.texture == 0 else (1 - config.texture) + config.texture * contrast(clean)

    def change(delta: Any) -> Any:  # the grid's change at the region's size, within each pixel's reach
        full = upsample(delta, (height, width))
        return full if reach_map is None else full * reach_map

    def shared_change(delta: Any) -> Any:  # keep-colour's one change for R, G and B
        return torch.minimum(torch.maximum(change(delta), room_low), room_high)

    def cloaked(delta: Any) -> Any:
        if keep_colour:
            return start + shared_change(delta)
        return torch.minimum(torch.maximum(start + change(delta), low), high)

    with torch.no_grad():
        references = descriptors(clean) if reference is None else {n: F.normalize(v[None], dim=1) for n, v in reference.items()}
        targets = None if toward is None else {n: F.normalize(v[None], dim=1) for n, v in toward.items()}
        if targets is not None and all(float((references[n] * targets[n]).sum()) > FACE_NETWORKS[n].same_face_cosine
                                       for n in targets):
            targets = None  # the photo is of the target's face itself: pulling it toward itself would undo the cloak
    reach, step = config.reach(epsilon)  # the clip to the clean photo's bound is in ``cloaked``
    delta = torch.zeros(1, 1, *grid, requires_grad=True)
    velocity = torch.zeros_like(delta)
    for _ in range(config.steps):
        params = distortions.sample(1, cloak.layer, rng).without_flips()  # the chip is cut where the face is
        gain = None
        if config.model_noise > 0 and cloak.net is not None:  # dlib's twin only: its channel scales
            gain = 1 + config.model_noise * torch.randn(cloak.net.gammas.shape, generator=rng)
        seen_photo = distortions.apply(cloaked(delta), params, cloak.layer)
        maps = jittered()
        similarity = objective(descriptors(seen_photo, gain, maps))
        if config.smoothing > 0:
            similarity = similarity + config.smoothing * objective(descriptors(smoothed(seen_photo), None, maps))
        (gradient,) = torch.autograd.grad(similarity, delta)
        with torch.no_grad():
            if config.momentum > 0:
                velocity = config.momentum * velocity + gradient / gradient.abs().mean().clamp_min(1e-12)
                gradient = velocity
            delta -= step * gradient.sign()
            delta.clamp_(-reach, reach)
    with torch.no_grad():
        if keep_colour:  # one rounded change for all three channels: R-G and B-G stay exact
            pixels = start_u8.permute(2, 0, 1)[None].float() + torch.round(shared_change(delta) * 255)
        else:
            pixels = torch.round(cloaked(delta) * 255)  # integer levels within the bound: rounding keeps it
        final = {name: float((seen * references[name]).sum()) for name, seen in descriptors(pixels / 255).items()}
    return pixels[0].permute(1, 2, 0).to(torch.uint8).numpy(), final


def contrast(photo: Any) -> Any:
    """1 x 1 x H x W in [0, 1]: the luminance's 7 x 7 local standard deviation over its 90th percentile."""
    import torch
    import torch.nn.functional as F

    luma = (photo * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    padded = F.pad(luma, (3, 3, 3, 3), mode="replicate")
    mean, mean_square = F.avg_pool2d(padded, 7, stride=1), F.avg_pool2d(padded**2, 7, stride=1)
    deviation = (mean_square - mean**2).clamp_min(0).sqrt()
    return (deviation / torch.quantile(deviation.flatten(), 0.9).clamp_min(1e-6)).clamp(max=1)


def smoothed(photo: Any) -> Any:
    """LowKey's smoothed copy: a 7 x 7 Gaussian blur, sigma 3, per channel."""
    import torch
    import torch.nn.functional as F

    taps = torch.exp(-((torch.arange(7, dtype=photo.dtype) - 3) ** 2) / (2 * 3.0**2))
    taps = taps / taps.sum()
    kernel = (taps[:, None] * taps[None, :]).expand(photo.shape[1], 1, 7, 7)
    return F.conv2d(F.pad(photo, (3, 3, 3, 3), mode="replicate"), kernel, groups=photo.shape[1])
