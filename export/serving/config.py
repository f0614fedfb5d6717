"""TF Serving's ``ModelServerConfig`` as the server's input: parsing and validation.

The file is the text proto ``tensorflow_model_server --model_config_file`` reads
(``tensorflow_serving/config/model_server_config.proto``); the checks and their words follow
``model_servers/server_core.cc`` (ValidateModelConfigList) so a config that one server refuses
the other refuses too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from export.serving.errors import ServingError
from export.serving.layout import find_models

PLATFORM = "tensorflow"


class ConfigError(ServingError, ValueError):
    """A config that cannot be served (at start: one line and exit; on reload: logged, the
    previous config keeps serving)."""

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT"):
        super().__init__(code, message)


@dataclass(frozen=True)
class ModelEntry:
    """One ``config { ... }`` of a model_config_list."""

    name: str
    base_path: Path
    policy: str = "latest"          # latest | all | specific
    num_versions: int = 1           # latest { num_versions }
    versions: tuple[int, ...] = ()  # specific { versions }
    labels: tuple[tuple[str, int], ...] = ()

    def aspired(self, on_disk) -> set[int]:
        """The versions this entry's model_version_policy serves among those on disk."""
        found = set(on_disk)
        if self.policy == "all":
            return found
        if self.policy == "specific":
            return found & set(self.versions)
        return set(sorted(found, reverse=True)[:self.num_versions])


def parse_config(text: str, source: str = "model config") -> model_server_config_pb2.ModelServerConfig:
    """A ModelServerConfig from text proto, or ConfigError naming the file and the problem."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ConfigError(f"Failed to parse {source} as a ModelServerConfig text proto: "
                          f"{error}") from None
    return config


def read_config(path) -> model_server_config_pb2.ModelServerConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read --model_config_file {path}: {error}", "NOT_FOUND") from None
    return parse_config(text, str(path))


def single_model_config(name: str, base_path) -> model_server_config_pb2.ModelServerConfig:
    """``--model_name`` + ``--model_base_path`` as a one-entry config (BuildSingleModelConfig)."""
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add()
    entry.name, entry.base_path, entry.model_platform = name, str(base_path), PLATFORM
    return config


def directory_config(base) -> model_server_config_pb2.ModelServerConfig:
    """The project's ``--base DIR``: every model folder under DIR, latest version, no labels."""
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()
    for name in sorted(find_models(base)):
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = os.path.abspath(os.path.join(base, name))
        entry.model_platform = PLATFORM
    return config


def model_entries(config: model_server_config_pb2.ModelServerConfig) -> list[ModelEntry]:
    """Validated entries of a config, in TF Serving's words when it would refuse it too."""
    kind = config.WhichOneof("config")
    if kind is None:
        return []
    if kind != "model_config_list":
        raise ConfigError("ServerModelConfig type not supported by HandleReloadConfigRequest. "
                          "Only ModelConfigList is currently supported")
    entries, names = [], set()
    for item in config.model_config_list.config:
        if item.name in names:
            raise ConfigError(f"Illegal to list model {item.name} multiple times in config list")
        names.add(item.name)
        if not item.name:
            raise ConfigError("A model config has no name")
        if not os.path.isabs(item.base_path):
            raise ConfigError(f"Expected model {item.name} to have an absolute path or URI; got "
                              f"base_path()={item.base_path}")
        if item.model_platform not in ("", PLATFORM):
            raise ConfigError(f"Model {item.name}: model_platform {item.model_platform!r} is not "
                              f"supported (only {PLATFORM!r})")
        entries.append(ModelEntry(item.name, Path(item.base_path), *_policy(item),
                                  tuple(sorted(item.version_labels.items()))))
    return entries


def _policy(item) -> tuple[str, int, tuple[int, ...]]:
    policy = item.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return "all", 0, ()
    if which == "specific":
        if not policy.specific.versions:
            raise ConfigError(f"Model {item.name}: specific version policy lists no versions")
        return "specific", 0, tuple(sorted(policy.specific.versions))
    if which == "latest":
        return "latest", max(1, policy.latest.num_versions), ()
    return "latest", 1, ()
