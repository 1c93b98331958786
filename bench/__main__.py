"""`python -m bench`: one run on one input, a table on stdout and the same figures as JSON."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench import explain, gui_latency, measure, plot, sections, zoo

SCALES = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per figure")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="folder for results.json and growth.png")
    parser.add_argument("--quick", action="store_true",
                        help="only the engine table and the GEMM bound")
    parser.add_argument("--with-numpy", action="store_true",
                        help="also time the numpy reference engine (slow)")
    parser.add_argument("--no-large", action="store_true",
                        help="skip the 4000x3000 memory measurement")
    return parser.parse_args(argv)


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_report(report: dict) -> None:
    m, e = report["machine"], report["engines"]
    print(f"machine: {m['nproc']} cores, {m['cpu']}, numpy {m['numpy']} with "
          f"{m['blas']['name']} {m['blas']['version']} ({m['blas']['threads']} threads, "
          f"{m['blas']['kernel']} kernel), load {m['load_average']}")
    print(f"workload: input {e['input_shape']} -> scores {e['output_shape']}, "
          f"{e['gflop']} GFLOP; numpy GEMM {report['gemm']['gflops']:.1f} GFLOP/s -> "
          f"bound {e['gemm_bound_ms']} ms\n")
    rows = [["engine", "median ms", "GFLOP/s", "vs opencv", "x GEMM bound", "max |dP|"]]
    for name, r in sorted(e["engines"].items(), key=lambda kv: kv[1]["median_ms"]):
        mark = " (default)" if name == e["default"] else ""
        rows.append([name + mark, f"{r['median_ms']:.1f}", f"{r['gflops']:.1f}",
                     f"{r['speedup_vs_opencv']:.2f}x" if r["speedup_vs_opencv"] else "-",
                     f"{r['x_gemm_bound']:.2f}", f"{r['max_prob_diff']:.1e}"])
    print(table(rows))
    for name, why in e["failed"].items():
        print(f"  {name}: not run ({why})")
    if "per_window" in report:
        p = report["per_window"]
        print(f"\nper-window classifier ({p['windows']} windows, batches of {p['batch']}, "
              f"{p['engine']}): {p['median_ms']:.0f} ms vs dense {p['dense_ms']:.0f} ms -> "
              f"dense is {p['dense_speedup']}x faster; identical: {p['identical']} "
              f"(max |dP| {p['max_prob_diff']:.1e} over the {p['windows']} shared cells; the "
              f"dense map {p['dense_map']} adds {p['dense_edge_cells']} edge cells)")
    if "growth" in report:
        g = report["growth"]
        print(f"\ngrowth ({g['engine']}): {g['ms_per_megapixel']} ms per megapixel + "
              f"{g['intercept_ms']} ms, R^2 {g['r2']}; plot {report['files'].get('growth_png')}")
        print("  " + ", ".join(f"x{p['scale']:g}: {p['ms']:.0f} ms" for p in g["points"]))
    if "end_to_end" in report:
        t = report["end_to_end"]
        print(f"\nend to end ({t['command']}): {t['seconds']:.2f} s, peak RSS "
              f"{t['peak_rss_mb']:.0f} MB, exit {t['exit_code']}, PNG written: "
              f"{t['png_written']}")
    if "gui_latency" in report:
        print("\n" + "\n".join(gui_latency.report_lines(report["gui_latency"])))
    if "zoo" in report:
        print("\n" + "\n".join(zoo.report_lines(report["zoo"])))
    if "explain" in report:
        print("\n" + "\n".join(explain.report_lines(report["explain"])))
    for big in report.get("large_image", []):
        print(f"\n4000x3000 at scale 1 ({big['engine']}): engine estimate "
              f"{big.get('estimate_mb', '-')} MB, limit {big['limit_mb']:.0f} MB; " +
              (f"refused before allocating, process peak RSS {big['peak_rss_mb']:.0f} MB: "
               f"{big['refused']}" if "refused" in big else
               f"{ran_on(big)}process peak RSS {big['peak_rss_mb']:.0f} MB, forward "
               f"{big.get('forward_ms', '-')} ms, exit {big['exit_code']}"))


def ran_on(big: dict) -> str:
    """Which engine computed the large map, when it is not the one asked for (the fallback)."""
    if big.get("ran_on", big["engine"]) == big["engine"]:
        return ""
    return f"ran on {big['ran_on']} (its estimate {big['ran_on_estimate_mb']} MB), "


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    report: dict = {"machine": measure.machine(), "files": {}}
    workload = sections.Workload.load()
    report["gemm"] = measure.gemm_rate(args.repeat)
    report["engines"] = sections.engines_section(
        workload, sections.dense_engines(args.with_numpy), args.repeat, report["gemm"]["gflops"])
    best = report["engines"]["fastest_exact"] or report["engines"]["default"]
    if not args.quick:
        dense_ms = report["engines"]["engines"][best]["median_ms"]
        report["per_window"] = sections.per_window_section(workload, best, dense_ms,
                                                           max(3, args.repeat // 2))
        default = report["engines"]["default"]
        report["growth"] = sections.growth_section(workload, default, SCALES,
                                                   max(3, args.repeat // 2))
        g = report["growth"]
        path = plot.growth_png(g["points"], g["ms_per_megapixel"] / 1e6, g["intercept_ms"],
                               f"dense pass of the sample plate, engine {default}: "
                               f"{g['ms_per_megapixel']} ms/MP + {g['intercept_ms']} ms",
                               args.out / "growth.png")
        report["files"]["growth_png"] = str(path)
        report["end_to_end"] = sections.end_to_end_section()
        report["gui_latency"] = gui_latency.gui_latency_section()
        report["zoo"] = zoo.zoo_section(args.repeat)
        report["explain"] = explain.explain_section(args.repeat)
        if not args.no_large:
            report["large_image"] = [sections.large_image_section(name) for name in
                                     dict.fromkeys([default, "blas"])]
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    report["files"]["json"] = str(args.out / "results.json")
    print_report(report)
    print("\n" + json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.exit(main())
