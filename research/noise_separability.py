"""Does a generator's perturbation form a class-wise shortcut? A diagnostic.

For every WebFace10 train photo (at the model's working size) compute delta with the
identities' own codes (labels) and with hashed names (``webface10-<label>``), then report:
linear accuracy of identity from the noise alone (3-fold, 16x16 pooled), how close each
photo's noise is to its class mean (within-class cosine), and how alike the class means
are (between-class cosine; near 1 means one shared pattern, no shortcut).

  python research/noise_separability.py --model models/segue-webface10-112.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segue_cli.artifacts import load_generator  # noqa: E402
from segue_cli.datasets import decode_images, scan_image_folder  # noqa: E402
from segue_cli.nn.codes import folder_code, identity_code  # noqa: E402


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "segue-webface10-112.safetensors")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "WebFace10" / "train")
    args = parser.parse_args()
    loaded = load_generator(args.model)
    dataset = scan_image_folder(args.data)
    images, _, _ = decode_images([item.path for item in dataset.items], loaded.metadata.image_size)
    targets = np.array(dataset.targets)
    x = images.float() / 255
    report = {}
    for name, codes in (("labels", [folder_code(n) for n in dataset.identities]),
                        ("hashed", [identity_code(f"webface10-{n}") for n in dataset.identities])):
        with torch.no_grad():
            delta = torch.cat([loaded.model.perturbation(x[i:i + 100], [codes[t] for t in targets[i:i + 100]],
                                                         loaded.metadata.epsilon) for i in range(0, len(targets), 100)])
        features = F.adaptive_avg_pool2d(delta, 16).flatten(1).numpy()
        linear = cross_val_score(LogisticRegression(max_iter=2000), features, targets, cv=3).mean()
        classes = sorted(set(targets.tolist()))
        means = torch.stack([delta[torch.from_numpy(targets == c)].mean(0).flatten() for c in classes])
        within = np.mean([F.cosine_similarity(delta[torch.from_numpy(targets == c)].flatten(1), means[i][None]).mean().item()
                          for i, c in enumerate(classes)])
        between = F.cosine_similarity(means[:, None], means[None], dim=-1)[~torch.eye(len(classes), dtype=torch.bool)].mean()
        report[name] = {"noise_only_linear_accuracy": round(float(linear), 3), "within_class_cosine": round(float(within), 3),
                        "between_class_mean_cosine": round(float(between), 3),
                        "saturated_fraction": round(float((delta.abs() > 0.99 * loaded.metadata.epsilon).float().mean()), 3)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
