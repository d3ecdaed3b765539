"""Copy the trained model into weights/minillm-bilingual/, the offline default, with its training record.

    python scripts/bundled/export.py runs/bundled                        # one run (resumed in pieces)
    python scripts/bundled/export.py runs/bundled-small runs/bundled-stage{2,3,4}   # stages, each from the one before

Takes the last run's checkpoint (config.json, BF16 model.safetensors, generation_config.json; not the
trainer state), keeps the tokenizer and corpus manifest already in weights/minillm-bilingual/, and writes
each run's recipe as it last ran (the checkpoint's, with the overrides of its last resume: recipe.json for one
run, recipe_stageN.json for stages), training_log.jsonl (every run's log, each line tagged with its stage)
and loss_curve.png (loss and learning rate against tokens seen in total).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEST = ROOT / "weights" / "minillm-bilingual"


def main(runs: list[str]) -> None:
    runs = [Path(r) for r in runs]
    last = runs[-1] / "checkpoint"
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copyfile(last / name, DEST / name)
    for old in DEST.glob("recipe*.json"):  # the recipes of the model being replaced
        old.unlink()
    lines, offset = [], 0
    for stage, run in enumerate(runs, 1):
        recipe = json.loads((run / "checkpoint" / "trainer_state" / "state.json").read_text())["recipe"]
        run_lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
        for x in run_lines:
            lines.append(dict(x, stage=stage, tokens_total=offset + x["tokens"]))
        offset += run_lines[-1]["tokens"]
        name = "recipe.json" if len(runs) == 1 else f"recipe_stage{stage}.json"
        (DEST / name).write_text(json.dumps(recipe, indent=1) + "\n")
        print(f"stage {stage}: {run} ({len(run_lines)} steps, {run_lines[-1]['tokens'] / 1e6:.2f} M tokens, "
              f"{run_lines[-1]['elapsed'] / 60:.0f} min, last loss {run_lines[-1]['loss']:.3f}, "
              f"recipe lr {recipe['lr']})")
    (DEST / "training_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, height_ratios=(3, 1))
    millions = [x["tokens_total"] / 1e6 for x in lines]  # the x axis of both panels
    ax.plot(millions, [x["loss"] for x in lines], lw=0.6, alpha=0.7, label="training batch")
    val = [x for x in lines if "val_loss" in x]
    ax.plot([x["tokens_total"] / 1e6 for x in val], [x["val_loss"] for x in val], "o-", label="validation")
    for stage_start in [x["tokens_total"] / 1e6 for x in lines if x["step"] == 1][1:]:
        ax.axvline(stage_start, color="grey", ls="--", lw=0.8)
    ax_lr.plot(millions, [x["lr"] for x in lines], lw=1)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("tokens seen (millions)")
    ax.set_ylabel("next-token loss (nats)")
    ax.set_title("minillm-bilingual: trained by minillm train (NumPy, 2 CPU cores)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(DEST / "loss_curve.png", dpi=110)
    print(f"wrote {DEST}")


if __name__ == "__main__":
    main(sys.argv[1:])
