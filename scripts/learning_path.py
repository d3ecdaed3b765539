"""Print the learning path: each idea, its plain one-screen function, that function's length, and the engine
modules it is tested equal to. The line counts are measured from the code, so docs/LEARNING_PATH.md (and the
README's table) can be checked against it (tests/test_plain.py does).

    python scripts/learning_path.py            # a Markdown table (docs/LEARNING_PATH.md)
    python scripts/learning_path.py --readme   # the README's table: with links and each step's notebook
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAIN = ROOT / "minillm" / "plain"

# (idea, plain module, plain function, notebook number (or a docs page), engine modules it equals), in reading order
PATH = [
    ("the dense forward pass (Qwen2 / Qwen3)", "forward.py", "plain_forward", "01",
     "model/transformer.py, block.py, attention.py, mlp.py, norm.py, rope.py, linear.py, embedding.py"),
    ("sampling: temperature, top-k, top-p", "generate.py", "plain_sample", "03", "generation/sampling.py"),
    ("generation with a growing KV cache", "generate.py", "plain_generate", "03",
     "generation/generate.py, model/cache.py"),
    ("the backward of one dense layer", "backward.py", "plain_layer_backward", "07",
     "backward/block.py, attention.py, mlp.py, norm.py, rope.py, linear.py, activations.py"),
    ("the loss and every gradient", "train_step.py", "plain_loss_and_grads", "07",
     "backward/transformer.py, embedding.py, training/loss.py"),
    ("one AdamW step", "train_step.py", "plain_adamw_step", "07", "training/adamw.py"),
    ("a mixture of experts", "moe.py", "plain_moe_block", "08", "model/moe.py, router.py, topk.py"),
    ("Gated DeltaNet (linear attention)", "deltanet.py", "plain_gated_deltanet", "06",
     "model/gated_deltanet.py, conv.py, delta_rule.py, norm.py"),
    ("the hybrid forward (Qwen3.5, Qwen3-Next)", "hybrid.py", "plain_hybrid_forward", "06",
     "model/transformer.py, hybrid.py, gated_attention.py, rope.py (partial), norm.py"),
    ("how the delta rule learns (its backward)", "deltanet_backward.py", "deltanet_backward", "06",
     "backward/delta_rule.py (recurrent and chunked)"),
    ("fine-tuning a few weights: LoRA", "lora.py", "lora_linear", "09", "model/lora.py, backward/lora.py"),
    ("how an image becomes tokens (Qwen3.5 vision)", "vision.py", "image_to_tokens", "10",
     "vision/processor.py, encoder.py, positions.py, multimodal.py"),
    ("training on N workers: data parallelism", "data_parallel.py", "data_parallel_loss_and_grads",
     "docs/DISTRIBUTED.md", "training/distributed.py"),
    ("the ring allreduce", "ring_allreduce.py", "ring_allreduce", "docs/DISTRIBUTED.md",
     "training/distributed.py (MPI's Allreduce)"),
    ("ZeRO-1: the optimizer state sharded", "zero1.py", "zero1_adamw_step", "docs/DISTRIBUTED.md",
     "training/distributed.py, adamw.py"),
]
NOTEBOOKS = ROOT / "notebooks"


def function_lines(module: str) -> dict[str, int]:
    """{function name: its lines, from ``def`` to its last line, docstring included} of minillm/plain/<module>."""
    tree = ast.parse((PLAIN / module).read_text(encoding="utf-8"))
    return {node.name: node.end_lineno - node.lineno + 1 for node in tree.body if isinstance(node, ast.FunctionDef)}


def table() -> list[tuple[str, str, int, str]]:
    """(idea, 'file:function', lines, engine modules) for every step of the path."""
    return [(idea, f"minillm/plain/{module}:{name}", function_lines(module)[name], engine)
            for idea, module, name, _, engine in PATH]


def markdown() -> str:
    rows = ["| idea | plain function | lines | tested equal to (minillm/...) |", "|---|---|---|---|"]
    rows += [f"| {idea} | `{where}` | {lines} | {engine} |" for idea, where, lines, engine in table()]
    return "\n".join(rows)


def readme_markdown() -> str:
    """The README's learning path: the same steps, with links to the code and to the notebook of each."""
    rows = ["| idea | plain function (one screen) | lines | notebook | engine (minillm/...) |", "|---|---|---|---|---|"]
    for (idea, module, name, notebook, engine), (_, _, lines, _) in zip(PATH, table()):
        if notebook.startswith("docs/"):
            where = f"[{notebook[5:-3].lower()}]({notebook})"
        else:
            (nb,) = sorted(NOTEBOOKS.glob(f"{notebook}_*.ipynb"))
            where = f"[{notebook}](notebooks/{nb.name})"
        rows.append(f"| {idea} | [`{name}`](minillm/plain/{module}) | {lines} | {where} | {engine} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys
    print(readme_markdown() if "--readme" in sys.argv else markdown())
