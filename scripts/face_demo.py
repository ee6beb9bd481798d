"""Face recognition on the hybrid core: learn 5 Olivetti persons, forget one, add one, with energy.

    python scripts/face_demo.py --model both --json --out results/faces
"""

from __future__ import annotations

import argparse
import json

import torch

from neuro_rm.tasks.face import MODELS, format_result, run_face_demos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=[*MODELS, "both"], default="cnn", help="network to run the lifecycle on")
    parser.add_argument("--out", default=None, help="folder for face_demo_<model>.json")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--fast", action="store_true", help="one fold, few epochs: a smoke test, not results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run_face_demos(args.model, args.out, args.fast, args.seed, progress=not args.json)
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else format_result(result))


if __name__ == "__main__":
    main()
