"""The ``simplecnn`` commands: each calls one library function and prints what it returns."""

from __future__ import annotations

import argparse
import json
import os
import sys

from simplecnn.cli.parser import architecture, model_config, train_config
from simplecnn.config import STYLE_NAMES
from simplecnn.errors import UsageError


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_skipped(skipped: list, where: str) -> None:
    """Name each skipped file once, with its reason (Skipped objects or their dicts)."""
    if not skipped:
        return
    _say(f"skipped {len(skipped)} file(s) ({where}):")
    for s in skipped[:20]:
        path, reason = (s["path"], s["reason"]) if isinstance(s, dict) else (s.path, s.reason)
        _say(f"  {path}: {reason}")
    if len(skipped) > 20:
        _say(f"  ... and {len(skipped) - 20} more")


def cmd_summary(args: argparse.Namespace) -> int:
    from simplecnn.costs import format_cost, model_cost
    from simplecnn.models import STYLES, build_model

    config = model_config(args)
    for style in list(STYLES) if args.style == "all" else [args.style]:
        model = build_model(style, config)
        print(f"== {style} ==")
        model.summary(expand_nested=args.expand_nested)
        print(format_cost(model_cost(model)))
        print()
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from simplecnn.equivalence import TOLERANCE, compare_backends, format_compare

    rows = compare_backends(model_config(args), args.backends, plot_dir=args.plot_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("Each style gets the Functional model's (random) weights, then must match it: "
              f"outputs in inference mode and gradients of one training step within {TOLERANCE:g}, "
              "a .keras save/load round trip, and a plot_model drawing.")  # fmt: skip
        print(format_compare(rows))
    return 0 if rows and all(r["ok"] for r in rows) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from simplecnn.backends import parse_backends
    from simplecnn.bench import format_table, run_bench

    styles = list(STYLE_NAMES) if args.styles == "all" else [s.strip() for s in args.styles.split(",")]
    for style in styles:
        if style not in STYLE_NAMES:
            raise UsageError(f"Unknown style {style!r} in --styles. Allowed: all, {', '.join(STYLE_NAMES)}")
    report = run_bench(styles, parse_backends(args.backends), image_size=args.image_size,
                       batch_size=args.batch_size, steps=args.steps, rounds=args.rounds,
                       progress=_say)  # fmt: skip
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from simplecnn import distributed
    from simplecnn.training import train

    config = train_config(args)
    dist = distributed.from_env(args.coordinator, args.num_processes, args.process_id)
    if dist is not None:
        if args.out is None:
            raise UsageError("a multi-process job needs --out, the same in every process")
        distributed.initialize(dist)
    out = args.out or _default_run_dir(config.style)
    result = train(args.data_dir, out, config, overwrite=args.overwrite, resume=args.resume,
                   export=[args.export] if args.export else [],
                   verbose=2 if args.quiet_progress else "auto", architecture=architecture(args))  # fmt: skip
    if distributed.process_slice()[0] != 0:
        return 0  # process 0 reports
    _print_skipped(result.skipped, f"recorded in {os.path.join(out, 'files.json')}")
    for warning in result.warnings:
        _say(f"warning: {warning}")
    if any(result.check.values()):
        _say(f"the copies, leaks and conflicts found are listed in {os.path.join(out, 'check.json')} "
             f"(pictures: simplecnn check {args.data_dir} --out DIR)")
    if result.stopped == "nan":
        _say(f"simplecnn train: error: {result.message}")
        return 1
    best = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.best.items()) if k != "learning_rate")
    print(f"trained {config.style} on {len(result.class_names)} classes {result.class_names} "
          f"in {result.seconds:.1f} s ({len(result.history.get('loss', []))} epochs of "
          f"{result.plan['planned_epochs']} planned in {result.plan['asked']}); best epoch "
          f"{result.best_epoch}: {best}")  # fmt: skip
    for hint in result.hints:
        _say(f"note: {hint}")
    if result.input_wait:
        print(f"waiting for input: {result.input_wait['fraction']:.1%} of training time "
              f"(worst epoch {result.input_wait['worst_epoch_fraction']:.1%})")  # fmt: skip
    for fmt, check in result.exports.items():
        print(f"exported {fmt}: max |export - keras| = {check['max_abs_difference']:.2e} on "
              f"{check['images']} ({'passed' if check['passed'] else 'FAILED'}); predict, evaluate "
              f"and serve now answer with it")  # fmt: skip
    print(f"run directory: {out}")
    return 0 if all(c["passed"] for c in result.exports.values()) else 1


def _default_run_dir(style: str) -> str:
    import time

    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S") + f"-{style}")


def cmd_lr_find(args: argparse.Namespace) -> int:
    from simplecnn.lr_find import lr_find

    result = lr_find(args.data_dir, train_config(args), start_lr=args.start_lr, end_lr=args.end_lr,
                     steps=args.steps, png=args.out or "lr_find.png",
                     architecture=architecture(args))  # fmt: skip
    print(f"tried {len(result['lrs'])} learning rates from {result['lrs'][0]:.2g} to "
          f"{result['lrs'][-1]:.2g}; lowest loss at {result['min_loss_lr']:.2g}, steepest fall "
          f"at {result['steepest']:.2g}")  # fmt: skip
    print(f"suggested: --learning-rate {result['suggested']:.2g}   (plot: {result['png']})")
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from simplecnn.distributed import launch

    failed = launch(args.num_processes, args.command_args, port=args.port, debug=args.debug)
    if failed:
        i, code = failed
        _say(f"simplecnn launch: error: process {i} of {args.num_processes} exited with code "
             f"{code}; stopped the others (run the same command again to resume from the last backup)")  # fmt: skip
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from simplecnn.inference import evaluate

    m = evaluate(args.run_dir, args.data_dir, out_dir=args.out, threshold=args.threshold, tta=args.tta,
                 runtime=args.runtime)  # fmt: skip
    if args.json:
        from simplecnn.files import dumps_json

        print(dumps_json(m))
        return 0
    _print_skipped(m["skipped"], "not evaluated")
    auc = "n/a (one class present)" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
    print(f"evaluated {m['n']} images of {m['class_names']} ({m['averaging']}; runtime {m['runtime']})")
    print(f"accuracy  {m['accuracy']:.4f}\nprecision {m['precision']:.4f}\n"
          f"recall    {m['recall']:.4f}\nf1        {m['f1']:.4f}\nroc_auc   {auc}")  # fmt: skip
    print("confusion matrix (rows: true, columns: predicted):")
    width = max(len(n) for n in m["class_names"])
    print(" " * (width + 2) + "  ".join(n.rjust(width) for n in m["class_names"]))
    for name, row in zip(m["class_names"], m["confusion_matrix"]):
        print(name.rjust(width) + "  " + "  ".join(str(v).rjust(width) for v in row))
    print(f"{len(m['most_wrong'])} misclassified shown in most_wrong.png; report and plots in "
          f"{m['out_dir']}")  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from simplecnn.files import check_file_target, write_text
    from simplecnn.inference import format_predictions, is_prediction_file, open_predictor, predict

    if args.output:  # refused before any work if it would replace a file simplecnn did not write
        check_file_target(args.output, "--output", is_prediction_file)
    predictor = open_predictor(args.run_dir, args.runtime)
    _say(f"runtime: {predictor.note}")
    rows, skipped = predict(args.run_dir, args.paths, threshold=args.threshold, tta=args.tta,
                            runtime=predictor)  # fmt: skip
    text = format_predictions(rows, args.format)
    if args.output:
        write_text(args.output, text)
        _say(f"wrote {len(rows)} predictions to {args.output}")
    else:
        sys.stdout.write(text)
    _print_skipped(skipped, "not predicted")
    if not rows:
        raise UsageError("no readable image among the given paths")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from simplecnn.explain import explain_files

    def progress(row: dict) -> None:
        print(f"{row['path']}: {row['label']} ({row['probability']:.3f}) -> {row['png']}", flush=True)

    result = explain_files(args.run_dir, args.images, out_dir=args.out, layer=args.layer,
                           class_name=args.class_name, on_image=progress)  # fmt: skip
    _print_skipped(result.skipped, "not explained")
    if not result.rows:
        raise UsageError("no readable image among the given paths")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from simplecnn.export import export_run

    result = export_run(args.run_dir, args.format, out_dir=args.out, quantize=args.quantize,
                        check_images=args.check_images)  # fmt: skip
    c = result.check
    acc = ""
    if c.get("keras_accuracy") is not None:
        acc = (f"; accuracy {c['export_accuracy']:.4f} vs Keras {c['keras_accuracy']:.4f} "
               f"({c['accuracy_change']:+.4f})")  # fmt: skip
    tol = f" (tolerance {c['tolerance']:g})" if c["tolerance"] is not None else ""
    print(f"wrote {result.path}")
    print(f"check on {c['images']}: max |export - keras| = {c['max_abs_difference']:.2e}{tol}, "
          f"same label {c['label_agreement']:.1%}{acc}; {c['export_img_per_s']:.1f} img/s "
          f"(Keras {c['keras_img_per_s']:.1f}); {c['artifact_bytes'] / 1e6:.2f} MB")  # fmt: skip
    print(f"check {'passed' if c['passed'] else 'FAILED'}: {os.path.join(result.out_dir, 'check.json')}")
    return 0 if c["passed"] else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from simplecnn.serve import serve

    serve(args.run_dir, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
          max_batch=args.max_batch, quiet=args.quiet, say=_say, runtime=args.runtime)  # fmt: skip
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from simplecnn.demo import run_demo

    ok = run_demo(args.out or os.path.join("runs", "demo"), style=args.style, epochs=args.epochs,
                  seed=args.seed, quiet_progress=args.quiet_progress)  # fmt: skip
    return 0 if ok else 1


def cmd_check(args: argparse.Namespace) -> int:
    from simplecnn.check import check_folder, write_report

    report = check_folder(args.data_dir, args.validation_split, args.seed)
    if args.labels or args.run:
        from simplecnn.check.labels import label_issues

        report["labels"] = label_issues(args.data_dir, run_dir=args.run, time_budget=args.time_budget,
                                        seed=args.seed, say=_say)  # fmt: skip
    if args.out:
        report["sheets"] = write_report(report, args.out, args.data_dir)
    if args.json:
        from simplecnn.files import dumps_json

        print(dumps_json(report))
        return 0
    counts = ", ".join(f"{name} {n}" for name, n in report["totals"].items())
    print(f"checked {report['images']} images of {len(report['classes'])} classes ({counts}) in "
          f"{sum(report['seconds'].values()):.1f} s")  # fmt: skip
    for finding in report["findings"] or [{"message": "no problems found"}]:
        print(f"- {finding['message']}")
    if "labels" in report:
        labels = report["labels"]
        print(f"- likely wrong labels ({labels['method']}): cleanlab flags {labels['flagged']} of "
              f"{labels['images']}; least plausible first:")  # fmt: skip
        for row in labels["ranking"][:10]:
            print(f"    {row['path']}: filed as {row['class']}, looks like {row['predicted']} "
                  f"(score {row['score']:.3f})")  # fmt: skip
    if args.out:
        print(f"report and contact sheets in {args.out}")
    elif report["findings"]:
        print("(--out DIR writes the report and a contact sheet of each kind of finding)")
    return 0
