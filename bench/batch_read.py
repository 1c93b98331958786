"""Reading a folder of plate crops in one `read` call against one call per crop.

    python -m bench.batch_read DIR [--jobs N] [--json]

DIR holds a `manifest.csv` with a `plate_crop_file` column (the format of shared/plates-dev).
Three ways, timed from launch to exit in the same run: one `read` call per crop; one call on all
crops; one call with `--jobs N` (default: one process per core). Separate calls pay the start
of Python, the imports and the model load for every crop; a batch pays them once. The texts
must be the same every way. Target (issue 15): one call is at least 4x faster than separate
calls.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.read_plates import manifest_rows, verdict

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 4.0


def cpu_seconds() -> float:
    """User + system time of the finished child processes so far (the worker processes of
    --jobs included): what the work costs, whatever else runs on the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_read(args: list[str]) -> tuple[float, float, list[str]]:
    """Wall time and CPU time of one `main.py read ... --format jsonl`, and the texts it read
    in order."""
    cpu, start = cpu_seconds(), time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "read", *args,
                           "--format", "jsonl"], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"read failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, cpu_seconds() - cpu, [json.loads(line)["text"]
                                          for line in done.stdout.splitlines()]


def measure(crops: list[str], jobs: int) -> dict:
    """The three timings and texts, the batch first so separate calls find warm file caches
    no more than it does."""
    load = os.getloadavg()[0]
    one_call, one_cpu, one_texts = run_read(crops)
    separate, separate_cpu, separate_texts = 0.0, 0.0, []
    for crop in crops:
        elapsed, cpu, texts = run_read([crop])
        separate += elapsed
        separate_cpu += cpu
        separate_texts += texts
    jobs_call, jobs_cpu, jobs_texts = run_read([*crops, "--jobs", str(jobs)])
    return {"crops": len(crops), "jobs": jobs, "load_average": load,
            "separate_s": round(separate, 2), "one_call_s": round(one_call, 2),
            "jobs_call_s": round(jobs_call, 2),
            "ratio_one_call": round(separate / one_call, 2),
            "ratio_jobs_call": round(separate / jobs_call, 2),
            "separate_cpu_s": round(separate_cpu, 2), "one_call_cpu_s": round(one_cpu, 2),
            "jobs_call_cpu_s": round(jobs_cpu, 2),
            "crops_per_cpu_s": round(len(crops) / one_cpu, 2),
            "same_texts": one_texts == separate_texts == jobs_texts, "texts": one_texts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_read", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder with manifest.csv and the crops")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="processes of the third way (default: one per core)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    crops = [str(args.folder / row["plate_crop_file"]) for row in manifest_rows(args.folder)]
    result = measure(crops, args.jobs)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["same_texts"] else 1
    print(f"{result['crops']} crops, load average {result['load_average']:.1f} at the start")
    print("                          wall        CPU")
    print(f"  {result['crops']} separate read calls  {result['separate_s']:7.1f} s  "
          f"{result['separate_cpu_s']:7.1f} s")
    print(f"  one call                  {result['one_call_s']:7.1f} s  "
          f"{result['one_call_cpu_s']:7.1f} s  {result['ratio_one_call']:.1f}x faster")
    print(f"  one call, --jobs {result['jobs']}        {result['jobs_call_s']:7.1f} s  "
          f"{result['jobs_call_cpu_s']:7.1f} s  {result['ratio_jobs_call']:.1f}x faster")
    print(f"one call reads {result['crops_per_cpu_s']:.2f} crops per CPU second")
    print(f"same texts every way: {result['same_texts']}")
    print(f"target: one call >= {TARGET_RATIO:g}x faster: "
          f"{verdict(result['ratio_one_call'] >= TARGET_RATIO)} (one process), "
          f"{verdict(result['ratio_jobs_call'] >= TARGET_RATIO)} (--jobs {result['jobs']})")
    return 0 if result["same_texts"] else 1


if __name__ == "__main__":
    sys.exit(main())
