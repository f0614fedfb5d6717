"""TF Serving's model directory layout ``BASE/NAME/VERSION/saved_model.pb`` and ``models.config``.

Standard library only, so config writing and discovery need no TensorFlow import.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

log = logging.getLogger("export.serve")

CONFIG_NAME = "models.config"
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
_VERSION_RE = re.compile(r"[0-9]+", re.ASCII)
_INT64_MAX = 2**63 - 1


def version_number(name: str) -> int | None:
    """The version a directory name stands for, or None (``.tmp-3``, ``latest``, overflow)."""
    if not _VERSION_RE.fullmatch(name):
        return None
    number = int(name)
    return number if number <= _INT64_MAX else None


def is_complete_version(path: Path) -> bool:
    """A version directory is complete once its saved_model.pb(txt) exists."""
    return any((path / name).is_file() for name in SAVED_MODEL_FILES)


def find_versions(model_dir: Path) -> dict[int, Path]:
    """Complete versions of one model: ``{version: path}``; everything else is ignored."""
    versions = {}
    try:
        entries = list(os.scandir(model_dir))
    except OSError:
        return {}
    for entry in entries:
        number = version_number(entry.name)
        if number is not None and entry.is_dir() and is_complete_version(Path(entry.path)):
            versions[number] = Path(entry.path)
    return versions


def find_models(base: str | os.PathLike) -> dict[str, dict[int, Path]]:
    """Every model under BASE with at least one complete version: ``{name: {version: path}}``."""
    models = {}
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return {}
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        versions = find_versions(Path(entry.path))
        if versions:
            models[entry.name] = versions
    return models


def _quote(text: str) -> str:
    """A text-proto string literal (C-style escapes)."""
    escaped = []
    for char in text:
        if char in '\\"':
            escaped.append("\\" + char)
        elif char == "\n":
            escaped.append("\\n")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\{ord(char):03o}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def models_config_text(names, model_root="/models", version_policy="latest", labels=None) -> str:
    """TF Serving's text-proto ``model_config_list`` with one ``config`` per model name."""
    labels = labels or {}
    lines = ["model_config_list {"]
    for name in names:
        lines += ["  config {", f"    name: {_quote(name)}",
                  f"    base_path: {_quote(model_root.rstrip('/') + '/' + name)}",
                  '    model_platform: "tensorflow"']
        if version_policy == "all":
            lines.append("    model_version_policy { all {} }")
        for label, version in sorted(labels.get(name, {}).items()):
            lines.append(f"    version_labels {{ key: {_quote(label)} value: {int(version)} }}")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_models_config(base, model_root="/models", version_policy="latest", labels=None,
                        names=None) -> Path:
    """Write ``BASE/models.config`` atomically (temp file + os.replace); returns its path.

    ``names`` defaults to the models found under BASE; ``model_root`` is where BASE is mounted
    for real TF Serving (``docker run -v $PWD/saved_models:/models ...``). An unchanged file is
    left alone.
    """
    base = Path(base)
    path = base / CONFIG_NAME
    names = sorted(find_models(base)) if names is None else list(names)
    text = models_config_text(names, model_root, version_policy, labels)
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except (OSError, UnicodeDecodeError):
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{CONFIG_NAME}.", dir=base)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("Wrote %s (%d model%s)", path, len(names), "" if len(names) == 1 else "s")
    return path
