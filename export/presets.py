"""The zoo's pretrained presets on the command line.

    python -m export.presets list                                  # name, variant, metrics, size
    python -m export.presets pull dcgan_fashion_mnist --base serving  # -> serving/NAME/N/ (SavedModel)
    python -m export.presets pull --all --base serving
    python -m export.presets build runs/dcgan --name dcgan_fashion_mnist   # -> releases/, registry

``pull`` downloads and verifies the archive (``zoo.presets.from_preset``), builds the SavedModel
from its weights on this machine with ``export.saved_model.export_model`` (the next version in
TF Serving's layout, written atomically) and puts the model card beside the versions. Pulling a
preset already pulled into that base (same sha256) does nothing. ``--release-url`` (or
``$GAN_ZOO_RELEASE_URL``) points at a mirror or a directory of archives.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from zoo import presets

HEADLINE = ("fid_fmnist_10k", "ssim", "accuracy_b", "accuracy")


def headline(entry):
    """The first headline metric of a registry entry, as ``name value``."""
    metrics = entry.get("metrics", {})
    for key in HEADLINE + tuple(sorted(metrics)):
        if key in metrics:
            return f"{key} {metrics[key]:.4g}"
    return "not evaluated"


def list_command(args):
    registry = presets.load_registry(args.registry)
    rows = [("preset", "variant", "kind", "dataset", "headline metric", "size", "training")]
    for name in presets.list_presets(registry):
        entry = registry["presets"][name]
        training = entry.get("training", {})
        rows.append((name, entry["variant"], entry["kind"], entry["dataset"], headline(entry),
                     f"{entry['size_bytes'] / 1e6:.1f} MB",
                     f"{training.get('epochs', '?')} epochs, {training.get('wall_minutes', '?')} min"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(f"\nrelease base: {presets.release_url(args.release_url, registry)} "
          f"(override: --release-url or ${presets.RELEASE_URL_ENV})")
    return 0


def pulled_versions(base, name):
    """``BASE/NAME/presets.json``: version -> sha256 of the preset it was built from."""
    path = os.path.join(base, name, "presets.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def pull(name, base, version=None, release_url=None, registry=None):
    """Pull preset ``name`` into ``BASE/NAME/VERSION``; returns (version dir, newly written)."""
    from export.saved_model import export_model
    from training.files import atomic_write_bytes, atomic_write_json

    registry = registry or presets.load_registry()
    entry = presets.get_preset(name, registry)
    recorded = pulled_versions(base, name)
    if version is None:
        for existing, sha256 in sorted(recorded.items(), key=lambda kv: int(kv[0])):
            if sha256 == entry["sha256"] and os.path.isdir(os.path.join(base, name, existing)):
                return os.path.join(base, name, existing), False
    elif os.path.exists(os.path.join(base, name, str(version))):
        raise presets.PresetError(f"{os.path.join(base, name, str(version))} already exists; versions "
                                  "are immutable: omit --version (next free one) or pick another.")
    directory = presets.fetch(name, release_url, registry=registry)
    model = presets.load_preset_dir(directory)
    target = export_model(model, base, name, version)
    for file in (presets.CARD_FILE, presets.SAMPLES_FILE):
        source = os.path.join(directory, file)
        if os.path.exists(source):
            with open(source, "rb") as f:
                atomic_write_bytes(os.path.join(base, name, file), f.read())
    atomic_write_json(os.path.join(base, name, "presets.json"),
                      {**recorded, os.path.basename(target): entry["sha256"]})
    return target, True


def pull_command(args):
    registry = presets.load_registry(args.registry)
    names = presets.list_presets(registry) if args.all else args.names
    if not names:
        raise presets.PresetError("Name the presets to pull, or pass --all "
                                  f"(presets: {presets.list_presets(registry)}).")
    if args.version is not None and len(names) > 1:
        raise presets.PresetError("--version applies to one preset at a time: pull them one by one.")
    for name in names:
        target, written = pull(name, args.base, args.version, args.release_url, registry)
        print(f"{name}: {'pulled into' if written else 'already pulled as'} {target}")
    return 0


def build_command(args):
    entry = presets.build_preset(args.run_dir, args.name, args.releases, args.registry,
                                 args.licence, args.description)
    print(f"Built {os.path.join(args.releases or 'releases', args.name + '.tar.gz')}: "
          f"{entry['size_bytes'] / 1e6:.1f} MB, sha256 {entry['sha256']}; "
          f"recorded in {args.registry or presets.REGISTRY_PATH}")
    return 0


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", default=None, help="registry file (default: zoo/presets.json)")
    common.add_argument("--release-url", default=None,
                        help=f"release base URL or directory (default: ${presets.RELEASE_URL_ENV}, "
                             "else the registry's: the repository's releases/)")
    parser = argparse.ArgumentParser(prog="python -m export.presets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[common], help="presets with their metrics and sizes").set_defaults(
        run=list_command)
    pull_parser = commands.add_parser("pull", parents=[common],
                                      help="a preset into a serving base as its next version")
    pull_parser.add_argument("names", nargs="*", help="preset names")
    pull_parser.add_argument("--all", action="store_true", help="every preset of the registry")
    pull_parser.add_argument("--base", default="serving", help="serving base directory")
    pull_parser.add_argument("--version", type=int, default=None, help="default: next free version")
    pull_parser.set_defaults(run=pull_command)
    build = commands.add_parser("build", parents=[common],
                                help="a preset archive from a finished, evaluated run")
    build.add_argument("run_dir")
    build.add_argument("--name", required=True, help="preset name, e.g. dcgan_fashion_mnist")
    build.add_argument("--releases", default=None, help="archive folder (default: releases/)")
    build.add_argument("--licence", default=None, help="licence of the weights and their data")
    build.add_argument("--description", default=None, help="one line for the registry")
    build.set_defaults(run=build_command)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from export.saved_model import ExportError

    try:
        return args.run(args)
    except (presets.PresetError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
