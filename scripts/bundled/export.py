"""Copy the trained model into minillm/bundled/minillm-bilingual/, the offline default, with its training record.

    python scripts/bundled/export.py runs/bundled                        # one run (resumed in pieces)
    python scripts/bundled/export.py runs/bundled-small runs/bundled-stage{2,3,4}   # stages, each from the one before
    python scripts/bundled/export.py --average runs/bundled-a runs/bundled-b        # branches: their mean weights

Takes the last run's checkpoint (config.json, BF16 model.safetensors, generation_config.json; not the
trainer state), keeps the tokenizer and corpus manifest already in minillm/bundled/minillm-bilingual/, and writes
each run's recipe as it last ran (the checkpoint's, with the overrides of its last resume: recipe.json for one
run, recipe_stageN.json for stages), training_log.jsonl (every run's log, each line tagged with its stage)
and loss_curve.png (loss and learning rate against tokens seen in total).

--average: the runs are branches of one run (resumed from the same checkpoint, each decayed on its own data).
The exported weights are the mean of their float32 master weights (trainer_state/master.safetensors), rounded
once to BF16: a "model soup" (Wortsman et al. 2022), which lands nearer the centre of the low-loss basin than
any one branch. Each branch's recipe is written as recipe_branchN.json, the log keeps the shared steps once
and each branch's own steps tagged with "branch", and average.json records what was averaged.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from minillm.checkpoint.safetensors_file import SafetensorsFile  # noqa: E402
from minillm.checkpoint.saving import write_safetensors  # noqa: E402
DEST = ROOT / "minillm" / "bundled" / "minillm-bilingual"


def read_log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]


def read_recipe(run: Path) -> dict:
    """The recipe as the run last ran (the trainer state keeps it, with the last resume's overrides)."""
    return json.loads((run / "checkpoint" / "trainer_state" / "state.json").read_text())["recipe"]


def average_weights(runs: list[Path]) -> dict[str, np.ndarray]:
    """The mean of the runs' float32 master weights: {checkpoint name: [...] float32}."""
    if len({(run / "checkpoint" / "config.json").read_text() for run in runs}) != 1:
        raise SystemExit("--average: the runs' config.json differ: not branches of one run")
    total = None
    for run in runs:
        f = SafetensorsFile(run / "checkpoint" / "trainer_state" / "master.safetensors")
        master = {k: f.get_float32(k) for k in f.tensors}  # {name: [...] float32}
        if total is not None and (set(master) != set(total) or any(master[k].shape != total[k].shape for k in total)):
            raise SystemExit(f"{run}: its weights differ in names or shapes from {runs[0]}'s: not branches of one run")
        total = master if total is None else {k: total[k] + master[k] for k in total}
    return {k: v / len(runs) for k, v in total.items()}


def main(args: list[str]) -> None:
    average = args[:1] == ["--average"]
    runs = [Path(r) for r in (args[1:] if average else args)]
    for name in ("config.json", "generation_config.json"):
        shutil.copyfile(runs[-1] / "checkpoint" / name, DEST / name)
    for old in [*DEST.glob("recipe*.json"), DEST / "average.json"]:  # the record of the model being replaced
        old.unlink(missing_ok=True)
    if average:
        write_safetensors(DEST / "model.safetensors", average_weights(runs), "BF16")
        (DEST / "average.json").write_text(json.dumps(dict(
            method="mean of the branches' float32 master weights, rounded once to BF16",
            branches=[f"recipe_branch{b}.json" for b in range(1, len(runs) + 1)]), indent=1) + "\n")
        export_branches(runs)
    else:
        shutil.copyfile(runs[-1] / "checkpoint" / "model.safetensors", DEST / "model.safetensors")
        export_stages(runs)


def export_stages(runs: list[Path]) -> None:
    """Each stage's recipe (recipe.json for one run) and one log, tokens counted across the stages."""
    lines, offset = [], 0
    for stage, run in enumerate(runs, 1):
        recipe, run_lines = read_recipe(run), read_log(run)
        for x in run_lines:
            lines.append(dict(x, stage=stage, tokens_total=offset + x["tokens"]))
        offset += run_lines[-1]["tokens"]
        name = "recipe.json" if len(runs) == 1 else f"recipe_stage{stage}.json"
        (DEST / name).write_text(json.dumps(recipe, indent=1) + "\n")
        print(f"stage {stage}: {run} ({len(run_lines)} steps, {run_lines[-1]['tokens'] / 1e6:.2f} M tokens, "
              f"{run_lines[-1]['elapsed'] / 60:.0f} min, last loss {run_lines[-1]['loss']:.3f}, "
              f"recipe lr {recipe['lr']})")
    (DEST / "training_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    plot(lines, [])


def export_branches(runs: list[Path]) -> None:
    """Each branch's recipe and log; the log keeps the steps all branches share once."""
    logs = [read_log(run) for run in runs]
    shared = 0  # the number of leading lines every branch has in common
    while all(len(log) > shared and log[shared] == logs[0][shared] for log in logs):
        shared += 1
    lines = [dict(x, tokens_total=x["tokens"]) for x in logs[0][:shared]]
    branches = []
    for b, (run, log) in enumerate(zip(runs, logs), 1):
        own = [dict(x, branch=b, tokens_total=x["tokens"]) for x in log[shared:]]
        lines += own
        branches.append(lines[shared - 1:shared] + own)  # drawn from the last shared step on
        recipe = read_recipe(run)
        (DEST / f"recipe_branch{b}.json").write_text(json.dumps(recipe, indent=1) + "\n")
        print(f"branch {b}: {run} (steps {own[0]['step']}-{own[-1]['step']}, train tokens {recipe['train_tokens']}, "
              f"last loss {own[-1]['loss']:.3f})")
    (DEST / "training_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    plot(lines[:shared], branches)


def plot(lines: list[dict], branches: list[list[dict]]) -> None:
    """Loss (and validation) and learning rate against tokens seen: ``lines`` the steps of the run (or the steps
    its branches share), each of ``branches`` a branch's own steps, drawn apart."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(7, 5), sharex=True, height_ratios=(3, 1))
    every = lines + [x for branch in branches for x in branch]
    millions = [x["tokens_total"] / 1e6 for x in lines]  # the x axis of both panels
    ax.plot(millions, [x["loss"] for x in lines], lw=0.6, alpha=0.7, label="training batch")
    for b, branch in enumerate(branches, 1):
        ax.plot([x["tokens_total"] / 1e6 for x in branch], [x["loss"] for x in branch], lw=0.6, alpha=0.7,
                label=f"branch {b}")
    val = [x for x in every if "val_loss" in x]
    ax.plot([x["tokens_total"] / 1e6 for x in val], [x["val_loss"] for x in val], "o", label="validation")
    for stage_start in [x["tokens_total"] / 1e6 for x in lines if x["step"] == 1][1:]:
        ax.axvline(stage_start, color="grey", ls="--", lw=0.8)
    ax_lr.plot([x["tokens_total"] / 1e6 for x in every], [x["lr"] for x in every], ".", ms=1)
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
