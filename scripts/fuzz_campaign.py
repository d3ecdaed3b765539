"""The long fuzz campaign: thousands of hostile inputs on minillm's ten surfaces, and the table of outcomes.

    python scripts/fuzz_campaign.py                              # 2,000 inputs on each surface (20,000 in all)
    python scripts/fuzz_campaign.py --surface training --surface hybrid --surface hub --surface speculative \
        --surface train_api                                      # issue 31's five (10,000 inputs)
    python scripts/fuzz_campaign.py --surface text --n 500       # one surface (repeat --surface for several)
    nice -n 19 python scripts/fuzz_campaign.py --seed 7 --json out.json
    python scripts/fuzz_campaign.py --merge text.json api.json ...  # one table from runs made separately

The surfaces and their strategies are in tests/fuzz_harness.py. Every input runs in a forked child with a
4 GiB address-space limit and a timeout (20 s), so a hang, an abort or an unbounded allocation is counted
as an outcome of that input. The table gives, per surface, how many inputs ended in a result, a minillm
error, an escape (another exception type), a wrong result (accepted, but non-finite logits or a file from
outside the checkpoint), a MemoryError, a hang or an abort; then whether every valid input was accepted and
every input that must be refused was refused; then the distinct root causes of the failures.

The property the campaign checks: 0 escapes, 0 wrong results, 0 MemoryErrors, 0 hangs, 0 aborts, and every
valid input accepted. The exit status is 0 when it holds, 1 otherwise.
"""

from __future__ import annotations

import os

# One BLAS thread per child: a campaign runs thousands of short children with small matrices, and BLAS
# threads spinning on a busy machine make small products many times slower. (Set before NumPy loads.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hypothesis import HealthCheck, Phase, given, seed as hypothesis_seed, settings  # noqa: E402

import fuzz_harness as fh  # noqa: E402


def lower_render_limits(seconds: float):
    """Make hostile templates give up sooner, so the campaign's time goes to many inputs (any positive value
    keeps the property: the render is bounded, the bound is what is measured)."""
    def setup():
        try:
            from minillm.text import chat_template
        except ImportError:
            return
        if hasattr(chat_template, "DEFAULT_LIMITS"):
            chat_template.DEFAULT_LIMITS = dataclasses.replace(chat_template.DEFAULT_LIMITS, seconds=seconds)
    return setup


def run_surface(name: str, n: int, seed: int, timeout: float, progress: bool) -> list[tuple[fh.Case, fh.Outcome]]:
    results: list[tuple[fh.Case, fh.Outcome]] = []
    start = time.monotonic()

    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=fh.SURFACES[name])
    def campaign(case):
        outcome = fh.run_case(case, timeout=timeout)
        results.append((case, outcome))
        if progress and len(results) % 100 == 0:
            print(f"  {name}: {len(results)} inputs, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)

    campaign()
    return results


def table(all_results: dict[str, list[tuple[fh.Case, fh.Outcome]]]) -> tuple[str, bool]:
    cols = ["inputs", *fh.KINDS, "valid inputs", "valid refused", "bad accepted"]
    widths = [max(len(c), 7) for c in cols]
    lines = [f"{'surface':<11}" + "".join(f"{c:>{w + 2}}" for c, w in zip(cols, widths))]
    total = Counter()
    for name, results in all_results.items():
        row = Counter(o.kind for _, o in results)
        row["inputs"] = len(results)
        row["valid inputs"] = sum(c.expect == "valid" for c, _ in results)
        row["valid refused"] = sum(c.expect == "valid" and o.kind != fh.RESULT for c, o in results)
        row["bad accepted"] = sum(c.expect == "refuse" and o.kind == fh.RESULT for c, o in results)
        total.update(row)
        lines.append(f"{name:<11}" + "".join(f"{row[c]:>{w + 2},}" for c, w in zip(cols, widths)))
    lines.append(f"{'total':<11}" + "".join(f"{total[c]:>{w + 2},}" for c, w in zip(cols, widths)))
    ok = all(total[k] == 0 for k in fh.FAILURES) and total["valid refused"] == 0 and total["bad accepted"] == 0
    return "\n".join(lines), ok


def root_causes(all_results) -> str:
    groups: dict[tuple[str, str], list[fh.Case]] = defaultdict(list)
    details: dict[tuple[str, str], str] = {}
    for name, results in all_results.items():
        for case, outcome in results:
            problem = fh.verdict(case, outcome)
            if problem is None:
                continue
            if outcome.kind in fh.FAILURES:
                key = (f"{name}: {outcome.kind}", outcome.where or outcome.detail[:90])
            else:
                key = (f"{name}: {problem.split(':')[0]}", outcome.detail[:90])
            groups[key].append(case)
            details.setdefault(key, outcome.detail)
    if not groups:
        return "no failures"
    lines = [f"{len(groups)} distinct root causes:"]
    for (kind, where), cases in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  {len(cases):>5} x {kind}: {where}")
        lines.append(f"          e.g. {cases[0].label[:160]}")
        if details.get((kind, where)):
            lines.append(f"          -> {details[(kind, where)][:200]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--surface", action="append", choices=sorted(fh.SURFACES),
                   help="surface to fuzz (repeatable; default: all ten)")
    p.add_argument("--n", type=int, default=2000, help="inputs per surface (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per input (default 20)")
    p.add_argument("--render-seconds", type=float, default=1.0,
                   help="chat-template time limit inside the children (default 1 s; see lower_render_limits)")
    p.add_argument("--json", type=Path, help="also write every input's outcome here")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                   help="print the table of earlier runs' --json files instead of running")
    args = p.parse_args(argv)

    if args.merge:
        all_results = {}
        for f in args.merge:
            for name, rows in json.loads(f.read_text()).items():
                all_results.setdefault(name, []).extend(
                    (fh.Case(name, r["case"], None, r["expect"]), fh.Outcome(r["kind"], r["detail"], r["where"]))
                    for r in rows)
        text, ok = table(all_results)
        print(f"minillm fuzz campaign: {sum(map(len, all_results.values())):,} inputs from {len(args.merge)} runs\n")
        print(text + "\n\n" + root_causes(all_results))
        return 0 if ok else 1

    fh.Shared.prepare()
    fh.CHILD_SETUP.append(lower_render_limits(args.render_seconds))
    surfaces = args.surface or list(fh.SURFACES)
    all_results = {}
    start = time.monotonic()
    for name in surfaces:
        all_results[name] = run_surface(name, args.n, args.seed, args.timeout, not args.quiet)
    text, ok = table(all_results)
    print(f"minillm fuzz campaign: {sum(map(len, all_results.values())):,} inputs, seed {args.seed}, "
          f"{time.monotonic() - start:.0f} s\n")
    print(text)
    print()
    print(root_causes(all_results))
    if args.json:
        args.json.write_text(json.dumps({name: [{"case": c.label, "expect": c.expect, **vars(o)} for c, o in results]
                                         for name, results in all_results.items()}, indent=1))
    print(f"\n{'PASS' if ok else 'FAIL'}: 0 escapes, 0 wrong results, 0 MemoryErrors, 0 hangs, 0 aborts, every valid "
          f"input accepted" if ok else "\nFAIL: see the root causes above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
