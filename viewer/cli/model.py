"""`surgery` and `export`: a classifier made fully convolutional and checked, the result as ONNX."""
from __future__ import annotations

import argparse
from pathlib import Path

from viewer.engines import DEFAULT_ENGINE
from viewer.cli.options import (EXIT_CHECK_FAILED, add_model_options, add_preprocess_options,
                                dense_from_args, positive_count, prepare_outputs, print_json,
                                print_warnings, settings_from_args)
from viewer.net.weights import load_net


def register(sub: argparse._SubParsersAction) -> None:
    """Add `surgery` and `export` to the subcommands."""
    surg = sub.add_parser("surgery", help="make a classifier fully convolutional")
    surg.add_argument("--prototxt", type=Path, required=True, help="classifier prototxt")
    surg.add_argument("--weights", type=Path, required=True, help="classifier caffemodel")
    surg.add_argument("--out", type=Path, required=True, help="output folder")
    surg.add_argument("--fcn-prototxt", type=Path, help="your own fully convolutional prototxt "
                      "to transplant the weights into (the tutorial's workflow)")
    surg.add_argument("--check-count", type=positive_count, default=8,
                      help="random and glyph windows each for the equivalence check")
    surg.add_argument("--engine", default=None, help=f"engine for the check (default: {DEFAULT_ENGINE}, the fastest installed)")
    surg.add_argument("--json", action="store_true", help="print a JSON report")
    add_preprocess_options(surg)
    surg.set_defaults(func=cmd_surgery)
    onnx = sub.add_parser("export", help="write the surgered net as an ONNX model")
    onnx.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx",
                      help="the ONNX file to write (height and width symbolic; the geometry "
                      "and labels in its metadata)")
    add_model_options(onnx)
    onnx.set_defaults(func=cmd_export)


def cmd_surgery(args: argparse.Namespace) -> int:
    """Make a classifier fully convolutional, write it, and verify the equivalence."""
    from viewer import surgery
    from viewer.caffe import model_io
    from viewer.maps.preprocess import sidecar_path, write_net_with_settings

    classifier = load_net(args.prototxt, args.weights)
    print_warnings(classifier.warnings)
    settings = settings_from_args(args, classifier)
    inputs = tuple(p for p in (args.prototxt, args.weights, args.fcn_prototxt, args.mean,
                               args.labels, args.train_prototxt) if p)
    stem = args.weights.stem
    out_proto, out_weights, out_sidecar = prepare_outputs(
        args.out, [f"{stem}_fullconv.prototxt", f"{stem}_fullconv.caffemodel",
                   sidecar_path(f"{stem}_fullconv.prototxt").name], inputs)
    if args.fcn_prototxt:
        target, warnings = model_io.read_prototxt(args.fcn_prototxt)
        print_warnings(warnings)
        result = surgery.transplant(classifier, target, str(args.fcn_prototxt))
    else:
        result = surgery.make_fully_convolutional(classifier)
    check = surgery.verify_equivalence(classifier, result.net, count=args.check_count,
                                       engine=args.engine, transformer=settings.transformer)
    write_net_with_settings(result.net, out_proto, out_weights, settings, inputs)
    if args.json:
        print_json({"prototxt": str(out_proto), "weights": str(out_weights),
                    "preprocessing": str(out_sidecar),
                    "layers": [c.as_dict() for c in result.conversions],
                    "max_abs_diff": check.max_abs_diff, "inputs_checked": check.inputs,
                    "engine": check.engine, "passed": check.passed})
    else:
        for c in result.conversions:
            print(surgery.conversion_text(c))
        print(f"wrote {out_proto}\nwrote {out_weights}\nwrote {out_sidecar} "
              f"({settings.transformer.describe()})")
        verdict = "ok" if check.passed else "FAILED"
        print(f"equivalence on {check.inputs} windows ({check.engine}): max |diff| = "
              f"{check.max_abs_diff:.3g} {verdict}")
    return 0 if check.passed else EXIT_CHECK_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    """Write the surgered net as a standalone ONNX model with its geometry and labels."""
    from viewer.maps import export

    from viewer.files.safe_write import check_output_path, is_stdout

    inputs = tuple(p for p in (args.prototxt, args.weights, args.mean, args.labels,
                               args.train_prototxt) if p)
    if is_stdout(args.onnx):                 # `--onnx -`: the model on stdout, nothing else
        check_output_path(args.onnx, inputs)
        export.save_onnx(dense_from_args(args), args.onnx, inputs)
        return 0
    out = prepare_outputs(args.onnx.parent, [args.onnx.name], inputs)[0]
    dense = dense_from_args(args)
    print(f"wrote {export.save_onnx(dense, out, inputs)}")
    return 0
