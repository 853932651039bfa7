"""MLflow: logging training runs, registering versions, reading them back.

Aliases and tags only (no stages): each run registers a new version of one
registered model with alias `challenger`; promotion moves `champion`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import RegistryError
from features.settings import Settings
from training.bundle import ModelBundle
from training.evaluation import plot_confusion, plot_reliability
from training.pipeline import TrainingResult
from training.profile import PROFILE_ARTIFACT, ReferenceProfile

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HEADLINE_METRICS = ("accuracy", "macro_f1", "ece", "coverage", "precision_covered")
_TAG_LIMIT = 4500
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@dataclass
class VersionInfo:
    name: str
    version: str
    run_id: str
    aliases: list[str]
    tags: dict[str, str]
    created_at_ms: int

    @property
    def metrics(self) -> dict[str, float]:
        found = {}
        for key in (*HEADLINE_METRICS, "oos_recall"):
            if key in self.tags and self.tags[key] not in ("", "None"):
                found[key] = float(self.tags[key])
        return found


def configure_mlflow(settings: Settings) -> Any:
    """Point MLflow at the settings' store and return a client."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow import MlflowClient

    uri = settings.resolved_tracking_uri()
    # MLflow also writes these URIs into the environment, where the next
    # Settings (another state folder, a Ray worker) would mistake them for the
    # user's own: put the environment back as it was.
    saved = {name: os.environ.get(name) for name in _URI_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if client.get_experiment_by_name(settings.experiment) is None:
        # Without an explicit location, artifacts land in ./mlruns of whatever
        # folder the command happens to run in.
        client.create_experiment(
            settings.experiment, artifact_location=settings.artifact_root.as_uri()
        )
    mlflow.set_experiment(settings.experiment)
    return client


def log_training_run(
    result: TrainingResult,
    settings: Settings,
    *,
    taxonomy_version: str,
    data_source: str,
) -> VersionInfo:
    """Log params, metrics and artifacts, register a version, alias challenger."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    client = configure_mlflow(settings)
    metrics = result.evaluation["metrics"]
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as scratch:
        mlflow.log_params({**result.params, "data_source": data_source[:500]})
        mlflow.log_metrics(_numeric(metrics))
        mlflow.log_metrics(_numeric(result.validation["metrics"], prefix="val_"))

        folder = Path(scratch)
        bundle_dir = result.bundle.save(folder / "bundle")
        report = {**result.evaluation, "validation": result.validation}
        (folder / "evaluation.json").write_text(json.dumps(report, indent=2))
        result.test_frame.to_parquet(folder / "test.parquet", index=False)
        plot_reliability(
            result.test_predictions,
            result.test_frame["label"].tolist(),
            folder / "reliability.png",
        )
        plot_confusion(
            result.test_predictions,
            result.test_frame["label"].tolist(),
            folder / "confusion.png",
        )
        for name in ("evaluation.json", "test.parquet"):
            mlflow.log_artifact(str(folder / name), artifact_path="evaluation")
        for name in ("reliability.png", "confusion.png"):
            mlflow.log_artifact(str(folder / name), artifact_path="plots")
        mlflow.log_dict(result.bundle.thresholds.model_dump(), "thresholds.json")
        if result.reference_profile is not None:
            profile_dir = result.reference_profile.save(folder / PROFILE_ARTIFACT)
            mlflow.log_artifacts(str(profile_dir), artifact_path=PROFILE_ARTIFACT)
        mlflow.log_dict({"labels": result.bundle.labels}, "label_map.json")

        signature = ModelSignature(
            inputs=Schema([ColSpec("string", "text")]),
            outputs=Schema(
                [
                    ColSpec("string", "queue"),
                    ColSpec("double", "confidence"),
                    ColSpec("double", "margin"),
                    ColSpec("double", "similarity"),
                    ColSpec("boolean", "may_route"),
                    ColSpec("string", "top_queues"),
                ]
            ),
        )
        from training.pyfunc import RouterModel

        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=RouterModel(),
            artifacts={"bundle": str(bundle_dir)},
            signature=signature,
            input_example=pd.DataFrame({"text": ["My invoice shows the wrong VAT."]}),
            pip_requirements=["switchboard", "sentence-transformers", "mlflow"],
            registered_model_name=settings.registered_model,
        )
        version = str(info.registered_model_version)

    tags = {
        "thresholds": _thresholds_tag(result.bundle),
        "data_hash": result.params["data_hash"],
        "taxonomy_version": taxonomy_version,
        "encoder": result.bundle.encoder_identity,
        "out_of_scope_label": result.params["out_of_scope_label"],
        **{key: f"{metrics[key]:.4f}" for key in HEADLINE_METRICS},
    }
    if metrics.get("oos_recall") is not None:
        tags["oos_recall"] = f"{metrics['oos_recall']:.4f}"
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model, version, key, value)
    client.set_registered_model_alias(settings.registered_model, CHALLENGER, version)
    log.info(
        "model version registered",
        extra={
            "model": settings.registered_model,
            "version": version,
            "run_id": run.info.run_id,
        },
    )
    return get_version(settings, version)


def get_version(settings: Settings, ref: str) -> VersionInfo:
    """A version by number or by alias (champion, challenger, ...).

    Raises:
        RegistryError: no such registered model, version or alias.
    """
    from mlflow.exceptions import MlflowException

    client = configure_mlflow(settings)
    name = settings.registered_model
    try:
        if ref.isdigit():
            found = client.get_model_version(name, ref)
        else:
            found = client.get_model_version_by_alias(name, ref)
    except MlflowException as err:
        raise RegistryError(
            f"model {name!r} has no version or alias {ref!r} in "
            f"{settings.resolved_tracking_uri()}; run `switchboard models` to list "
            "versions, or `switchboard train` to make one"
        ) from err
    return VersionInfo(
        name=name,
        version=str(found.version),
        run_id=str(found.run_id),
        aliases=list(found.aliases or []),
        tags=dict(found.tags or {}),
        created_at_ms=int(found.creation_timestamp or 0),
    )


def list_versions(settings: Settings) -> list[VersionInfo]:
    """Every version of the registered model, newest first, with aliases."""
    from mlflow.exceptions import MlflowException

    client = configure_mlflow(settings)
    name = settings.registered_model
    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    # search_model_versions leaves aliases out; ask for each version.
    versions = [get_version(settings, str(item.version)) for item in found]
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


def load_bundle(settings: Settings, ref: str) -> tuple[VersionInfo, ModelBundle]:
    """Download (once) and load the bundle of a version."""
    import mlflow

    version = get_version(settings, ref)
    target = settings.home_dir / "models" / settings.registered_model / version.version
    bundle_dir = target / "artifacts" / "bundle"
    if not (bundle_dir / "bundle.json").exists():
        configure_mlflow(settings)
        target.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{version.name}/{version.version}",
            dst_path=str(target),
        )
    if not (bundle_dir / "bundle.json").exists():
        raise RegistryError(
            f"version {version.version} of {version.name} has no Switchboard bundle; "
            "was it logged by `switchboard train`?"
        )
    return version, ModelBundle.load(bundle_dir)


def load_reference_profile(settings: Settings, ref: str) -> ReferenceProfile | None:
    """The drift reference profile of a version; None when it was logged without.

    Versions trained before profiles existed have none; drift monitoring then
    stays in model mode for them.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    version = get_version(settings, ref)
    target = settings.home_dir / "models" / settings.registered_model
    profile_dir = target / version.version / PROFILE_ARTIFACT
    if not (profile_dir / "profile.json").exists():
        configure_mlflow(settings)
        try:
            mlflow.artifacts.download_artifacts(
                run_id=version.run_id,
                artifact_path=PROFILE_ARTIFACT,
                dst_path=str(profile_dir.parent),
            )
        except (MlflowException, OSError):
            log.warning(
                "model version has no reference profile",
                extra={"model": version.name, "version": version.version},
            )
            return None
    try:
        return ReferenceProfile.load(profile_dir)
    except (OSError, ValueError, KeyError) as err:
        log.warning(
            "reference profile unreadable",
            extra={"version": version.version, "error": type(err).__name__},
        )
        return None


def load_test_frame(settings: Settings, version: VersionInfo) -> pd.DataFrame:
    """The test rows a version was evaluated on at training."""
    import mlflow

    configure_mlflow(settings)
    path = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path="evaluation/test.parquet"
    )
    return pd.read_parquet(path)


def _numeric(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    return {
        f"{prefix}{key}": float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _thresholds_tag(bundle: ModelBundle) -> str:
    thresholds = bundle.thresholds
    compact = {
        "target_precision": thresholds.target_precision,
        "global": round(thresholds.global_threshold, 4),
        "min_similarity": round(thresholds.min_similarity or 0.0, 4),
        "queues": {
            queue: round(rule.threshold, 4) if rule.routable else None
            for queue, rule in thresholds.queues.items()
        },
    }
    text = json.dumps(compact, separators=(",", ":"))
    if len(text) > _TAG_LIMIT:
        # Many-queue models: the full table is the thresholds.json artifact.
        compact.pop("queues")
        compact["queues_in"] = "thresholds.json artifact"
        text = json.dumps(compact, separators=(",", ":"))
    return text
