"""Long fuzzing run of every reader (issue 27): truncated, bit-flipped and header-altered
copies of the seed corpus ``tests/data/fuzz``.

Each case must end within its time limit with the reader's result or one of the project's
errors, allocate no more than the file can imply and write no file (``tests/_fuzz.py``).
Prints one JSON object: cases tried, failures (with the first few described), time.

    PYTHONPATH=src:tests python benchmarks/fuzz.py --examples 300
    PYTHONPATH=src:tests python benchmarks/fuzz.py --write-seeds   # rebuild the corpus
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _fuzz  # noqa: E402


def fuzz_target(t: _fuzz.Target, root: Path, examples: int, seed: int,
                keep: Path | None = None) -> dict:
    """Run ``examples`` cases per mutated file of one target; failures listed (and the
    failing inputs copied under ``keep``, one folder per failure, when given)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st

    failures: list[str] = []
    tried = [0]
    members = t.members or ("",)

    @hseed(seed)
    @settings(max_examples=examples * len(members), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(members), _fuzz.mutations())
    def one(member: str, mutate) -> None:
        tried[0] += 1
        problem = _fuzz.run_case(t, member, mutate, root=root)
        if problem:
            failures.append(problem)
            if keep is not None:
                _fuzz.keep_case(t, member, mutate, keep / f"{t.name}-{len(failures)}", root)

    t0 = time.perf_counter()
    one()
    return {"cases": tried[0], "failures": len(failures), "examples": failures[:5],
            "time_s": round(time.perf_counter() - t0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=300, help="cases per mutated file")
    ap.add_argument("--seed", type=int, default=27)
    ap.add_argument("--only", default=None, help="comma-separated target names")
    ap.add_argument("--write-seeds", action="store_true", help="rebuild tests/data/fuzz")
    ap.add_argument("--keep", type=Path, default=None,
                    help="folder where the inputs of failing cases are copied")
    args = ap.parse_args()
    if args.write_seeds:
        print(json.dumps({"seeds": [str(p) for p in _fuzz.write_seeds()]}))
        return
    wanted = set(args.only.split(",")) if args.only else None
    per: dict[str, dict] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for p in _fuzz.SEEDS.iterdir():
            (root / p.name).symlink_to(p)
        _fuzz.write_model_seed(root / "model.ectmodel")
        for t in _fuzz.TARGETS:
            if wanted is None or t.name in wanted:
                per[t.name] = fuzz_target(t, root, args.examples, args.seed, args.keep)
    print(json.dumps({
        "cases": sum(r["cases"] for r in per.values()),
        "failures": sum(r["failures"] for r in per.values()),
        "time_s": round(time.perf_counter() - t0, 1),
        "targets": per,
    }, indent=1))


if __name__ == "__main__":
    main()
