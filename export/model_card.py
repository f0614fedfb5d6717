"""Model cards: ``BASE/NAME/MODEL_CARD.md`` beside the versions, written from a run's records.

Sources, all in the run directory: ``config.json`` (data, paper, configuration), ``run.json``
(training time and hardware), ``history.csv`` (final losses), ``evaluations.jsonl`` (metrics
with their protocol, from ``python -m training.evaluate``) and the last ``samples/epoch_NNN.png``.
TF Serving only looks at numeric subdirectories of a model's base path, so the card and its
sample grid can live beside the versions.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil

import zoo
from training.files import atomic_write_bytes
from zoo.kinds import get_kind
from zoo.presets import training_summary

KNOWN_LIMITS = (
    "Trained and evaluated on one data set at its native resolution; outputs outside that "
    "domain are meaningless.",
    "Quality figures use the zoo's own feature network (see the protocol), not Inception-v3: "
    "compare them only with figures of the same protocol.",
    "GAN samples can reproduce training images; check before using them as new data.",
)


def _read_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _newest_per_protocol(records):
    """The last record of each distinct protocol, in order of first appearance."""
    newest = {}
    for record in records:
        newest[json.dumps(record.get("protocol", {}), sort_keys=True)] = record
    return list(newest.values())


def _last_history_row(path):
    """The last row of Keras's CSVLogger file, without its empty ``val_*`` columns."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    return {key: float(value) for key, value in rows[-1].items()
            if key != "epoch" and value not in ("", "NA")}


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def signature_lines(model):
    """What the export of registered model ``model`` serves (its kind's signatures)."""
    if model not in zoo.list_models():
        return [f"`{model}` is not a registered model: `saved_model_cli show --all --dir VERSION_DIR` "
                "lists the signatures"]
    spec = zoo.get_spec(model)
    return get_kind(spec.kind).signature_lines(spec)


def deviation_lines(config):
    """The run's hyper-parameters and optimizer settings that differ from its registered model's
    defaults (the paper's), one ``name: paper -> this run`` line each."""
    model = config.get("model")
    if model not in zoo.list_models():
        return []
    spec = zoo.get_spec(model)
    plain = lambda value: json.loads(json.dumps(value))  # noqa: E731  (tuples and lists alike)
    lines = [f"`{key}`: {plain(spec.defaults[key])} -> {plain(value)}"
             for key, value in config.get("hyperparameters", {}).items()
             if key in spec.defaults and key != "seed" and plain(spec.defaults[key]) != plain(value)]
    training = config.get("training", {})
    for key, default in spec.training.items():
        if key in training and plain(default) != plain(training[key]):
            lines.append(f"`{key}`: {plain(default)} -> {plain(training[key])}")
    if training.get("steps_per_epoch") and training.get("epochs"):
        lines.append(f"training length: {training['epochs'] * training['steps_per_epoch']:,} generator "
                     "steps (epochs x steps_per_epoch; the paper's schedule is in the model's docstring)")
    return lines


def render_model_card(name, run_dir, versions, sample_file=None, variant=None):
    """The Markdown text of a model card for model ``name`` trained in ``run_dir``.

    ``variant`` (a registered model name) is used when the run directory has no config.
    """
    config = _read_json(os.path.join(run_dir, "config.json")) or {"model": variant}
    run = _read_json(os.path.join(run_dir, "run.json")) or {}
    last = _last_history_row(os.path.join(run_dir, "history.csv"))
    evaluations = _newest_per_protocol(_read_jsonl(os.path.join(run_dir, "evaluations.jsonl")))
    model = config.get("model", "unknown")
    lines = [f"# {name}", ""]
    if model in zoo.list_models():
        lines += [f"`{model}`: {zoo.get_spec(model).paper}.", ""]
    lines += [
        "## Data",
        f"- data set: `{config.get('dataset', 'unknown')}` (train split)",
        "",
        "## Configuration",
        "```json",
        json.dumps({k: config.get(k) for k in ("hyperparameters", "training")}, indent=2),
        "```",
        "",
        "## Deviations from the paper's defaults",
        "",
    ]
    deviations = deviation_lines(config)
    lines += [f"- {line}" for line in deviations] or ["None: every hyper-parameter is the registry's default."]
    lines += ["", "## Training"]
    if run:
        hardware = run["sessions"][-1]["hardware"]
        devices = ", ".join(hardware["gpus"]) or f"CPU only, {hardware['cpu_count']} cores"
        minutes = training_summary(run_dir).get("wall_minutes", run["total_seconds"] / 60)
        lines += [f"- wall time: {minutes:.1f} min over "
                  f"{len(run['sessions'])} session(s); hardware: {devices} ({hardware['platform']})"]
    if last:
        lines += ["- last epoch: " + ", ".join(f"{k} {_fmt(v)}" for k, v in last.items())]
    recovered = config.get("recovered_from")  # bench/recover_run_from_release.py
    if recovered:
        lines += [f"- weights: {', '.join(recovered['kept'])} recovered from the SavedModel release "
                  f"`{recovered['release']}` (its run directory was lost); {', '.join(recovered['fresh'])} "
                  "freshly initialised, so fine-tuning starts with an untrained discriminator"]
    lines += ["", "## Quality"]
    if evaluations:
        lines += ["| metric | value | protocol |", "|---|---|---|"]
        for record in evaluations:
            protocol = json.dumps(record.get("protocol", {}), sort_keys=True)
            for key, value in record.get("metrics", {}).items():
                lines += [f"| `{key}` | {_fmt(value)} | {protocol} |"]
            for baseline, label in (("baseline_input", "the input itself"),
                                    ("baseline_mean_colour", "the mean training colour")):
                for key, value in record.get(baseline, {}).items():  # translation baselines
                    lines += [f"| `{key}` of {label} (baseline) | {_fmt(value)} | {protocol} |"]
    else:
        lines += ["Not evaluated yet: run `python -m training.evaluate RUN_DIR` before exporting."]
    lines += ["", "## Signatures", ""] + [f"- {line}" for line in signature_lines(model)]
    lines += ["", "## Samples", ""]
    lines += [f"![samples]({sample_file})" if sample_file else "No sample grid recorded."]
    lines += ["", "## Versions", ""] + [f"- `{v}`" for v in versions]
    lines += ["", "## Known limits", ""] + [f"- {limit}" for limit in KNOWN_LIMITS]
    return "\n".join(lines) + "\n"


def write_model_card(base, name, run_dir, variant=None):
    """Write ``BASE/NAME/MODEL_CARD.md`` (and ``samples.png``) from ``run_dir``; returns its path."""
    model_dir = os.path.join(base, name)
    grids = sorted(glob.glob(os.path.join(run_dir, "samples", "epoch_*.png")))
    sample_file = None
    if grids:
        sample_file = "samples.png"
        shutil.copyfile(grids[-1], os.path.join(model_dir, sample_file))
    versions = sorted((d for d in os.listdir(model_dir) if d.isdigit()), key=int)
    path = os.path.join(model_dir, "MODEL_CARD.md")
    atomic_write_bytes(path, render_model_card(name, run_dir, versions, sample_file, variant).encode())
    return path
