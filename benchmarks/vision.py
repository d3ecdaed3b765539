"""How fast an image becomes tokens: a 448 x 448 image through a Qwen3.5-0.8B-shaped vision tower.

    python benchmarks/vision.py                    # minillm against the matmul floor
    /path/to/python-with-torch benchmarks/vision.py  # and against transformers' CPU path, in the same run

The tower has Qwen3.5-0.8B's shapes (12 blocks of width 768, 12 heads, MLP 3072, patch 16, merge 2, a 48 x 48
position table, output width 1024) and random weights: speed does not depend on the values. A 448 x 448
image is a 28 x 28 grid of patches: 784 patches, 196 tokens. The floor is the time the encoder's matrix
products alone would take at the rate NumPy's BLAS reaches on one product of the same shape, measured here.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from minillm.vision.config import VisionConfig
from minillm.vision.encoder import build_vision_weights, encode_images, vision_shapes

QWEN35_08B = VisionConfig(depth=12, hidden_size=768, num_heads=12, intermediate_size=3072, out_hidden_size=1024,
                          patch_size=16, temporal_patch_size=2, spatial_merge_size=2, in_channels=3,
                          num_position_embeddings=2304, hidden_act="gelu_pytorch_tanh", rope_theta=10000.0,
                          image_token_id=248056, video_token_id=248057, vision_start_token_id=248053,
                          vision_end_token_id=248054)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_flops(cfg: VisionConfig, n: int) -> float:
    """Multiply-adds x 2 of every matrix product of the encoder for n patches (one image)."""
    Dv, Fv, D, m2 = cfg.hidden_size, cfg.intermediate_size, cfg.out_hidden_size, cfg.spatial_merge_size ** 2
    per_block = n * Dv * 3 * Dv + n * Dv * Dv + 2 * n * Dv * Fv + 2 * n * n * Dv  # qkv, proj, MLP, scores + values
    merger = (n // m2) * (m2 * Dv) ** 2 + (n // m2) * m2 * Dv * D
    return 2.0 * (n * cfg.patch_dim * Dv + cfg.depth * per_block + merger)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=448, help="image side in pixels (a multiple of 32)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cfg = QWEN35_08B
    rng = np.random.default_rng(0)
    shapes = vision_shapes(cfg)
    arrays = {name: (rng.standard_normal(shape, dtype=np.float32) * 0.02) for name, shape in shapes.items()}
    weights = build_vision_weights(cfg, arrays.__getitem__)
    g = args.size // cfg.patch_size
    grid = np.array([[1, g, g]])
    pixels = rng.standard_normal((g * g, cfg.patch_dim), dtype=np.float32)
    n = g * g

    encode_images(pixels, grid, weights, cfg)  # warm-up
    t_minillm = best_of(lambda: encode_images(pixels, grid, weights, cfg), args.repeats)
    a = rng.standard_normal((n, cfg.hidden_size), dtype=np.float32)
    b = rng.standard_normal((cfg.hidden_size, cfg.intermediate_size), dtype=np.float32)
    rate = 2.0 * a.shape[0] * a.shape[1] * b.shape[1] / best_of(lambda: a @ b, 5)  # FLOP/s, an MLP-sized product
    floor = matmul_flops(cfg, n) / rate
    print(f"{args.size} x {args.size} image: {n} patches -> {n // 4} tokens, Qwen3.5-0.8B vision tower "
          f"({sum(int(np.prod(s)) for s in shapes.values()) / 1e6:.0f} M parameters)")
    print(f"  minillm        {t_minillm * 1000:8.1f} ms   {t_minillm / floor:5.2f} x the matmul floor")
    print(f"  matmul floor   {floor * 1000:8.1f} ms   ({matmul_flops(cfg, n) / 1e9:.1f} GFLOP at {rate / 1e9:.0f} GFLOP/s)")
    import sys
    here = str(Path(__file__).resolve().parent)  # benchmarks/profile.py would shadow the standard library's
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]  # profile, which torch imports
    try:
        import torch
        import transformers
    except ImportError:
        print("  transformers   (not installed: run this script with a Python that has torch and transformers)")
        return
    vc = transformers.Qwen3_5VisionConfig(depth=cfg.depth, hidden_size=cfg.hidden_size, num_heads=cfg.num_heads,
                                          intermediate_size=cfg.intermediate_size, out_hidden_size=cfg.out_hidden_size,
                                          patch_size=cfg.patch_size, temporal_patch_size=cfg.temporal_patch_size,
                                          spatial_merge_size=cfg.spatial_merge_size,
                                          num_position_embeddings=cfg.num_position_embeddings)
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5VisionModel
    vc._attn_implementation = "sdpa"
    ref = Qwen3_5VisionModel(vc).float().eval()
    state = {name[len("model.visual."):]: torch.from_numpy(a) for name, a in arrays.items()}
    missing, unexpected = ref.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    tp, tg = torch.from_numpy(pixels), torch.from_numpy(grid)
    with torch.no_grad():
        out = ref(tp, grid_thw=tg).pooler_output.numpy()
        t_ref = best_of(lambda: ref(tp, grid_thw=tg), args.repeats)
    ours = encode_images(pixels, grid, weights, cfg)
    print(f"  transformers   {t_ref * 1000:8.1f} ms   (torch {torch.__version__}, {torch.get_num_threads()} threads); "
          f"minillm / transformers = {t_minillm / t_ref:.2f}; outputs differ by "
          f"{np.abs(ours - out).max() / np.abs(out).max():.1e} relative")


if __name__ == "__main__":
    main()
