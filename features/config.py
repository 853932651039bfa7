"""Loading YAML configuration into pydantic models with readable errors."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from features.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def bundled_config_path(name: str) -> Path:
    """Path of a file shipped in the `configs` package (taxonomy.yaml, ...)."""
    return Path(str(resources.files("configs").joinpath(name)))


def load_yaml_model(path: Path | str, model: type[ModelT]) -> ModelT:
    """Read a YAML file and validate it into `model`.

    Raises:
        ConfigError: naming the file, the path inside it and the problem, for
            a missing file, unparsable YAML or content the model rejects.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: file not found") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err

    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as err:
        raise ConfigError(f"{path}: {format_validation_error(err)}") from err


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: `queues.3.owner: Field required`."""
    lines = []
    for problem in err.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{where}: {problem['msg']}")
    return "; ".join(lines)


def file_hash(path: Path | str) -> str:
    """Short content hash, used as the version of a config file."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return digest[:12]
