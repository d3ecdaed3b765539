"""The AdamW reference: torch.optim.AdamW on a few tensors for a few steps, saved for tests/test_training.py.

    pip install torch==2.13.0          # only this script needs torch
    python scripts/make_adamw_fixture.py    # writes weights/adamw_reference.npz

Two parameter groups, as a Qwen training run has them: matrices with weight decay, 1-D tensors (a norm weight,
a bias) without. Saves the start values, every step's gradients and learning rate, and the values after
each step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "weights" / "adamw_reference.npz"
STEPS, BETAS, EPS, WEIGHT_DECAY = 5, (0.9, 0.95), 1e-8, 0.1
LRS = [1e-3, 3e-3, 1e-2, 5e-3, 2e-3]  # a schedule: the rate changes every step


def main() -> None:
    rng = np.random.default_rng(0)
    start = {"model.layers.0.mlp.up_proj.weight": rng.standard_normal((6, 4)).astype(np.float32),
             "model.layers.0.self_attn.q_proj.bias": rng.standard_normal(6).astype(np.float32),
             "model.norm.weight": (1 + 0.1 * rng.standard_normal(4)).astype(np.float32)}
    params = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in start.items()}
    opt = torch.optim.AdamW([{"params": [p for k, p in params.items() if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
                             {"params": [p for k, p in params.items() if p.ndim < 2], "weight_decay": 0.0}],
                            lr=LRS[0], betas=BETAS, eps=EPS)
    out = {f"start/{k}": v for k, v in start.items()}
    for step in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = LRS[step]
        for k, p in params.items():
            g = rng.standard_normal(p.shape).astype(np.float32) * (10.0 ** (step - 2))  # tiny to large
            p.grad = torch.tensor(g)
            out[f"grad{step}/{k}"] = g
        opt.step()
        for k, p in params.items():
            out[f"after{step}/{k}"] = p.detach().numpy().copy()
    out["lrs"] = np.array(LRS)
    out["settings"] = np.array([BETAS[0], BETAS[1], EPS, WEIGHT_DECAY])
    np.savez(OUT, **out)
    print(f"wrote {OUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
