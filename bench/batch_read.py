"""Reading a folder of plate crops in one `read` call against one call per crop, and `--jobs`
on Dask against the pool it replaced.

    python -m bench.batch_read DIR [--jobs N] [--photos] [--json]

DIR holds a `manifest.csv` with `plate_crop_file` and `file` columns (the format of
shared/plates-dev). Timed from launch to exit in the same run: one `read` call per crop; one
call on all crops; one call with `--jobs N` (default: one process per core) on Dask, and the
same on the old multiprocessing pool (`bench/old_pool.py`), alternately, best of three each, on
all crops, on the first four (a small batch, where start-up counts most) and, with `--photos`,
on the whole photos (best of two). Separate calls pay the start of Python, the imports and the
model load for every crop; a batch pays them once. The texts must be the same every way. Also:
what starting a local Dask cluster and its client costs (imports included), and, with
`--photos`, the photos read in one call (CPU seconds a photo).

Targets: one call at least 4x faster than separate calls (issue 15); `--jobs` on Dask at least
as fast as the pool within 5%, and its client's start-up at most 2 s (issue 26).
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
TARGET_DASK_SLOWER = 1.05
TARGET_STARTUP_S = 2.0


def cpu_seconds() -> float:
    """User + system time of the finished child processes so far (the worker processes of
    --jobs included): what the work costs, whatever else runs on the machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_read(args: list[str], program: tuple[str, ...] = ("main.py",)
             ) -> tuple[float, float, list[str]]:
    """Wall time and CPU time of one `main.py read ... --format jsonl` (or of the old pool's
    `-m bench.old_pool`), and the texts it read in order."""
    cpu, start = cpu_seconds(), time.perf_counter()
    done = subprocess.run([sys.executable, *program, "read", *args,
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


OLD_POOL = ("-m", "bench.old_pool")


def dask_against_pool(batches: dict[str, list[str]], jobs: int) -> dict:
    """`--jobs` on Dask and on the old pool, taking turns (pool, Dask, pool, Dask...) so that
    load from elsewhere hits both alike: the best wall and CPU times of each, per batch (three
    turns each, two on photos)."""
    result = {}
    for name, batch in batches.items():
        walls: dict[str, list[float]] = {"pool": [], "dask": []}
        cpus: dict[str, list[float]] = {"pool": [], "dask": []}
        texts = set()
        for _ in range(2 if name == "photos" else 3):
            for way, program in (("pool", OLD_POOL), ("dask", ("main.py",))):
                wall, cpu, read = run_read([*batch, "--jobs", str(jobs)], program)
                walls[way].append(wall)
                cpus[way].append(cpu)
                texts.add(tuple(read))
        pool, dask = min(walls["pool"]), min(walls["dask"])
        result[name] = {"images": len(batch), "pool_s": round(pool, 2),
                        "dask_s": round(dask, 2), "dask_over_pool": round(dask / pool, 3),
                        "pool_cpu_s": round(min(cpus["pool"]), 2),
                        "dask_cpu_s": round(min(cpus["dask"]), 2), "same_texts": len(texts) == 1}
    return result


def client_startup(jobs: int) -> float:
    """Seconds to import Dask, start a local cluster of `jobs` workers and connect a client, in
    a fresh process (as `read --jobs` does), best of two."""
    code = ("import time; t = time.perf_counter()\n"
            "from viewer.cli.cluster import connect\n"
            f"with connect({jobs}, None, False):\n"
            "    print(time.perf_counter() - t)\n")
    times = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=ROOT, check=True)
        times.append(float(done.stdout.split()[-1]))
    return round(min(times), 2)


def photos_rate(photos: list[str]) -> dict:
    """Whole photos read in one call: CPU seconds per photo (`--jobs` on them is in
    `dask_against_pool`)."""
    one, one_cpu, _ = run_read(photos)
    return {"photos": len(photos), "one_call_s": round(one, 2),
            "one_call_cpu_s": round(one_cpu, 2),
            "photos_per_cpu_s": round(len(photos) / one_cpu, 3),
            "cpu_s_per_photo": round(one_cpu / len(photos), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_read", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder with manifest.csv and the crops")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="processes of the third way (default: one per core)")
    parser.add_argument("--photos", action="store_true",
                        help="also read the whole photos (the manifest's `file` column)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    rows = manifest_rows(args.folder)
    crops = [str(args.folder / row["plate_crop_file"]) for row in rows]
    result = measure(crops, args.jobs)
    photos = [str(args.folder / row["file"]) for row in rows]
    batches = {"crops": crops, "four crops": crops[:4], **({"photos": photos} if args.photos
                                                           else {})}
    result["dask_vs_pool"] = dask_against_pool(batches, args.jobs)
    result["client_startup_s"] = client_startup(args.jobs)
    if args.photos:
        result["photos"] = photos_rate(photos)
    result["same_texts"] = result["same_texts"] and all(
        v["same_texts"] for v in result["dask_vs_pool"].values())
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
    for name, figures in result["dask_vs_pool"].items():
        print(f"  --jobs {result['jobs']}, {figures['images']} {name}: pool "
              f"{figures['pool_s']:.2f} s ({figures['pool_cpu_s']:.1f} CPU s), Dask "
              f"{figures['dask_s']:.2f} s ({figures['dask_cpu_s']:.1f} CPU s): "
              f"{figures['dask_over_pool']:.3f}x the pool's time")
    print(f"local Dask cluster and client start: {result['client_startup_s']:.2f} s")
    if "photos" in result:
        photos = result["photos"]
        print(f"{photos['photos']} photos: one call {photos['one_call_s']:.1f} s "
              f"({photos['one_call_cpu_s']:.1f} CPU s, {photos['cpu_s_per_photo']:.2f} CPU s a "
              "photo)")
    print(f"same texts every way: {result['same_texts']}")
    within = ", ".join(f"{verdict(v['dask_over_pool'] <= TARGET_DASK_SLOWER)} ({name})"
                       for name, v in result["dask_vs_pool"].items())
    print(f"target: Dask within {TARGET_DASK_SLOWER:g}x of the pool's time: {within}; client "
          f"start <= {TARGET_STARTUP_S:g} s: "
          f"{verdict(result['client_startup_s'] <= TARGET_STARTUP_S)}")
    print(f"target: one call >= {TARGET_RATIO:g}x faster: "
          f"{verdict(result['ratio_one_call'] >= TARGET_RATIO)} (one process), "
          f"{verdict(result['ratio_jobs_call'] >= TARGET_RATIO)} (--jobs {result['jobs']})")
    return 0 if result["same_texts"] else 1


if __name__ == "__main__":
    sys.exit(main())
