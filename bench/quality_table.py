"""Render docs/quality.md from evaluation records.

    python -m training.evaluate --reference > runs/evals/reference.json
    python -m training.evaluate runs/MODEL_fashion_mnist        # for each trained variant
    python bench/quality_table.py runs/evals/reference.json runs/*_fashion_mnist > docs/quality.md

Each run directory's newest ``evaluations.jsonl`` record with the reference's protocol is used.
"""

import json
import os
import sys

COLUMNS = ("fid", "kid", "is", "precision", "recall")


def row(label, metrics, suffix, extra=""):
    cells = [f"{metrics[f'{c}_{suffix}']:.4g}" for c in COLUMNS]
    return f"| {label} | {extra} | " + " | ".join(cells) + " |"


def main(reference_path, run_dirs):
    with open(reference_path) as f:
        reference = json.load(f)
    protocol = reference["protocol"]
    suffix = f"{protocol['feature_network']}_{protocol['num_samples'] // 1000}k"
    lines = [
        "# Quality of the zoo's models",
        "",
        f"Protocol: {json.dumps(protocol, sort_keys=True)}. Features and class probabilities come "
        "from the zoo's Fashion-MNIST classifier (`saved_models/evaluators/`, see "
        "`docs/evaluators.md`), not Inception-v3: compare these figures only with each other. "
        "Generated samples are compared with the real test split. Read precision together "
        "with recall: on these features Gaussian noise scores a high precision (see "
        "`docs/evaluators.md`). Training times are wall time on 2 CPU cores shared with "
        "other jobs.",
        "",
        "| model | training | " + " | ".join(f"{c}_{suffix}" for c in COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
        row("real train split (floor)", reference["floor_real_train_vs_test"], suffix),
    ]
    for run_dir in run_dirs:
        log = os.path.join(run_dir, "evaluations.jsonl")
        if not os.path.exists(log):
            continue
        records = [json.loads(line) for line in open(log) if line.strip()]
        records = [r for r in records if r["protocol"] == protocol]
        if not records:
            continue
        config = json.load(open(os.path.join(run_dir, "config.json")))
        state = json.load(open(os.path.join(run_dir, "state.json")))
        run = json.load(open(os.path.join(run_dir, "run.json")))
        training = f"{state['epoch']} epochs, {run['total_seconds'] / 60:.0f} min"
        lines.append(row(f"`{config['model']}`", records[-1]["metrics"], suffix, training))
    lines.append(row("Gaussian noise (ceiling)", reference["ceiling_gaussian_noise"], suffix))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
