"""Write the substitution task's problems as data files for ``r1kit zero`` (issue 26).

Usage: python scripts/substitution_data.py OUT_DIR
Writes OUT_DIR/train.jsonl (every equation outside the held-out set) and OUT_DIR/test.jsonl (the
held-out set, r1kit.data.substitution.test_set), rows ``id``, ``problem``, ``answer``, ``task``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from r1kit.data.substitution import test_set, train_set


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train_set()), ("test", test_set())):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{out / name}.jsonl: {len(rows)} problems")


if __name__ == "__main__":
    main()
