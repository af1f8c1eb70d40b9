"""Campaign configuration (segments, policy files and the policy a campaign stores), validated
through the operator-file loader (:mod:`ivr.yamlfile`): every error names file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from ivr.errors import ConfigError
from ivr.yamlfile import YamlDoc, load_model, validate

M = TypeVar("M", bound=BaseModel)


class CampaignConfigError(ConfigError):
    """A segments/policy file (or a campaign's stored policy) is invalid; nothing is dialed."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def load_yaml_model(model: type[M], path: str | Path) -> M:
    """Parse ``path`` and validate it as ``model``; :class:`CampaignConfigError` on any problem."""
    return load_model(model, path, error=CampaignConfigError, empty_ok=False)


def validate_model(model: type[M], data: Any, source: str) -> M:
    """``data`` that is not a file (a stored policy) as ``model``; errors name ``source``."""
    return validate(model, data, YamlDoc(source, data, {}), error=CampaignConfigError)
