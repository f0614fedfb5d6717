"""Render the quality tables of docs/image_to_image.md from translation runs' evaluation records.

    python bench/translation_table.py runs/p2p_* runs/cyclegan_shoes

Each run directory needs ``config.json``, ``run.json``, ``state.json`` and an
``evaluations.jsonl`` written by ``python -m training.evaluate RUN_DIR``; the newest record is used.
"""

import json
import os
import sys


def _load(run_dir, name):
    with open(os.path.join(run_dir, name)) as f:
        return json.load(f)


def _newest_evaluation(run_dir):
    with open(os.path.join(run_dir, "evaluations.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()][-1]


def _training(run_dir):
    config, run = _load(run_dir, "config.json"), _load(run_dir, "run.json")
    steps = _load(run_dir, "state.json")["epoch"] * config["training"]["steps_per_epoch"]
    return f"{steps:,} steps, {run['total_seconds'] / 60:.0f} min"


def paired_rows(run_dirs):
    lines = ["| task | output | training | L1 ↓ | PSNR (dB) ↑ | SSIM ↑ | saturation (targets') |",
             "|---|---|---|---:|---:|---:|---:|"]
    cells = lambda m: (f"{m['l1']:.3f} | {m['psnr']:.2f} | {m['ssim']:.3f} | "  # noqa: E731
                       f"{m['saturation']:.3f} ({m['target_saturation']:.3f})")
    by_task = {}
    for run_dir in run_dirs:
        record = _newest_evaluation(run_dir)
        by_task.setdefault(record["task"], []).append((run_dir, record))
    for task, records in sorted(by_task.items()):
        lines.append(f"| `{task}` | the input itself | — | {cells(records[0][1]['baseline_input'])} |")
        lines.append(f"| `{task}` | the training photos' mean colour | — | "
                     f"{cells(records[0][1]['baseline_mean_colour'])} |")
        for run_dir, record in sorted(records, key=lambda r: r[1]["protocol"]["adversarial_weight"]):
            label = "pix2pix, L1 only" if record["protocol"]["adversarial_weight"] == 0 else "pix2pix, cGAN + L1"
            lines.append(f"| `{task}` | {label} (`{os.path.basename(run_dir)}`) | "
                         f"{_training(run_dir)} | {cells(record['metrics'])} |")
    tiles = records[0][1]["metrics"]["tiles"]
    return lines + ["", f"On the {tiles} non-overlapping {records[0][1]['protocol']['crop_size']}px "
                    f"tiles of the held-out photos {', '.join(records[0][1]['protocol']['held_out'])}."]


def cycle_rows(run_dir):
    record = _newest_evaluation(run_dir)
    m = record["metrics"]
    fid_ab = next(k for k in m if k.startswith("fid_") and k.endswith("_a_to_b"))
    fid_ba = next(k for k in m if k.startswith("fid_") and k.endswith("_b_to_a"))
    fid_real = next(k for k in m if k.startswith("fid_") and k.endswith("_real_a_vs_real_b"))
    floor = lambda domain: next(k for k in m if k.startswith("fid_") and k.endswith(f"_floor_{domain}"))  # noqa: E731
    return [
        f"CycleGAN `{os.path.basename(run_dir)}` ({_training(run_dir)}), on the "
        f"{record['protocol']['num_samples']} test images of each class:",
        "",
        "| direction | classified as the target class | same, untranslated input | cycle L1 | "
        "FID to the real target class | FID, untranslated input | FID, real train images (floor) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| sneaker → ankle boot | {m['accuracy_a_to_b']:.1%} | {m['source_accuracy_a_to_b']:.1%} | "
        f"{m['cycle_l1_a']:.3f} | {m[fid_ab]:.1f} | {m[fid_real]:.1f} | {m[floor('b')]:.1f} |",
        f"| ankle boot → sneaker | {m['accuracy_b_to_a']:.1%} | {m['source_accuracy_b_to_a']:.1%} | "
        f"{m['cycle_l1_b']:.3f} | {m[fid_ba]:.1f} | {m[fid_real]:.1f} | {m[floor('a')]:.1f} |",
    ]


def main(run_dirs):
    run_dirs = [d for d in run_dirs if os.path.isdir(d)]  # a glob may catch logs beside the runs
    paired = [d for d in run_dirs if _newest_evaluation(d)["task"] != "sneakers_and_boots"]
    unpaired = [d for d in run_dirs if d not in paired]
    lines = paired_rows(paired) if paired else []
    for run_dir in unpaired:
        lines += [""] + cycle_rows(run_dir)
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
