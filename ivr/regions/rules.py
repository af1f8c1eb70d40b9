"""Region dialing rules (``config/regions.yaml``): what to do with a callee's number.

A rule matches on what phonenumbers says about the number (country, province/region, city,
carrier, number type) and decides: ``call`` (optionally via another trunk, from another caller-ID
pool, with a rewritten prefix), ``skip`` (with a reason) or ``message`` (send a follow-up message
instead of calling). Rules are tried in file order; the first enabled match wins; no match means
a plain call. An invalid number is skipped (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ivr.config import load_settings
from ivr.messages import check_template, render_template, unique_names
from ivr.phone import InvalidNumber, number_info, parse_e164
from ivr.regions.geo import (
    NUMBER_TYPES,
    city_parts,
    is_known_country,
    known_carriers,
    known_places,
    number_types,
    suggest,
)
from ivr.yamlfile import load_model, repeated

Action = Literal["call", "skip", "message"]

class MessageTemplateError(ValueError):
    """A follow-up message could not be rendered (e.g. a field the template needs is missing)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(v: Any) -> Any:
    if v is None:
        return []
    return [v] if isinstance(v, str) else v


class Match(_Strict):
    """Every given field must match; a list means any of its values. Case-insensitive."""

    country: list[str] = []  # ISO codes: CN
    region: list[str] = []  # province as the geocoder names it in English: Xinjiang
    city: list[str] = []  # Urumqi (the geocoder also says Urumchi for mobiles: list both)
    carrier: list[str] = []  # China Mobile
    type: list[str] = []  # mobile, fixed_line, voip, toll_free, ...

    _lists = field_validator("country", "region", "city", "carrier", "type",
                             mode="before")(_as_list)

    @field_validator("country")
    @classmethod
    def _country(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not is_known_country(c)]
        if bad:
            raise ValueError(f"unknown ISO country code(s) {bad}")
        return [c.upper() for c in v]

    @field_validator("type")
    @classmethod
    def _type(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t.lower() not in NUMBER_TYPES]
        if bad:
            raise ValueError(f"unknown number type(s) {bad}; known: {sorted(NUMBER_TYPES)}")
        return [t.lower() for t in v]

    @model_validator(mode="after")
    def _names(self) -> Match:
        countries: list[str | None] = list(self.country) or [None]
        regions: set[str] = set()
        cities: set[str] = set()
        carriers: set[str] = set()
        for c in countries:
            r, ci = known_places(c)
            regions |= r
            cities |= ci
            carriers |= known_carriers(c)
        where = f" for {'/'.join(self.country)}" if self.country else ""
        for label, values, known in (("region", self.region, regions), ("city", self.city, cities),
                                     ("carrier", self.carrier, carriers)):
            for value in values:
                if value.strip().lower() not in known:
                    raise ValueError(f"{label} {value!r} is not a name phonenumbers knows{where}"
                                     f"{suggest(value, frozenset(known))}")
        if not any((self.country, self.region, self.city, self.carrier, self.type)):
            raise ValueError("an empty match would catch every number; name at least one field")
        return self


class Rule(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    enabled: bool = True
    match: Match
    action: Action
    reason: str = ""
    trunk: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")  # call via this trunk
    caller_pool: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    strip: str = Field(default="", pattern=r"^[0-9]*$")  # digits removed from the dialed start
    prefix: str = Field(default="", pattern=r"^[0-9]*$")  # digits prepended after stripping
    message: str | None = None  # Jinja2 template of the follow-up message (action: message)

    _template = field_validator("message")(check_template)

    @model_validator(mode="after")
    def _action_fields(self) -> Rule:
        routing = [k for k in ("trunk", "caller_pool", "strip", "prefix") if getattr(self, k)]
        if self.action != "call" and routing:
            raise ValueError(f"{', '.join(routing)} only apply to action 'call', not "
                             f"{self.action!r}")
        if self.action == "skip" and not self.reason.strip():
            raise ValueError("action 'skip' needs a reason (it is shown to operators)")
        if self.action == "message" and not (self.message or "").strip():
            raise ValueError("action 'message' needs a message template")
        if self.action == "call" and self.message:
            raise ValueError("a message only applies to action 'message'")
        return self


class RulesFile(_Strict):
    rules: list[Rule] = []

    @model_validator(mode="after")
    def _unique(self) -> RulesFile:
        unique_names(r.name for r in self.rules)
        return self


@dataclass(frozen=True)
class Decision:
    action: Action
    trunk: str | None = None  # None: the caller ID's / default trunk
    caller_pool: str | None = None  # None: the default caller-ID pool
    prefix: str = ""  # digits prepended to the dialed digits (CallVariables.dial_prefix)
    reason: str = ""
    message: str | None = None  # template of the follow-up message (action 'message')
    rule_name: str | None = None
    strip: str = ""  # digits removed from the start of the dialed digits before the prefix
    dial: str = ""  # the digits the trunk dials after strip + prefix ("" when not calling)
    e164: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # country/region/city/carrier/types

    @property
    def calls(self) -> bool:
        return self.action == "call"

    @property
    def allowed(self) -> bool:
        """Whether a call may be placed (ivr.campaign.planner.decision_allows reads this)."""
        return self.action == "call"

    def render_message(self, context: dict[str, Any] | None = None) -> str:
        """The follow-up message with ``context`` (order fields) plus the number's info."""
        if self.message is None:
            raise MessageTemplateError(f"rule {self.rule_name!r} has no message")
        try:
            return render_template(self.message,
                                   {"phone": self.e164, **self.info, **(context or {})})
        except jinja2.TemplateError as exc:
            raise MessageTemplateError(f"rule {self.rule_name!r}: message template: {exc}") from exc

    def render_message_safe(self, context: dict[str, Any] | None = None) -> str:
        """For display: the rendered message, or the template with the error."""
        try:
            return self.render_message(context)
        except MessageTemplateError as exc:
            return f"{self.message} ({exc})"

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "e164", "action", "trunk", "caller_pool", "prefix", "strip", "dial", "reason",
            "message", "rule_name", "info")}


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    source: str = ""

    def match(self, e164: str) -> tuple[Rule | None, dict[str, Any]]:
        info = number_info(e164)
        types = number_types(e164)
        facts = {"country": info.country, "region": info.region, "city": info.city,
                 "carrier": info.carrier, "types": sorted(types)}
        for rule in self.rules:
            if rule.enabled and _matches(rule.match, info.country, info.region, info.city,
                                         info.carrier, types):
                return rule, facts
        return None, facts

    def decide(self, e164: str) -> Decision:
        """What to do with a call to ``e164``; never raises for a bad number (skips it)."""
        try:
            number = parse_e164(e164)
        except InvalidNumber as exc:
            return Decision(action="skip", reason=str(exc), rule_name=None, e164=str(e164))
        rule, facts = self.match(number)
        digits = number[1:]
        if rule is None:
            return Decision(action="call", reason="no region rule matched", dial=digits,
                            e164=number, info=facts)
        reason = rule.reason or rule.description or "no reason given"
        if rule.action != "call":
            # "region rule ..." prefix: stored as the contact's skip reason, which the outbox
            # matches (h5_skip_reasons: [region]) to send the follow-up instead of the call.
            return Decision(action=rule.action, reason=f"region rule {rule.name}: {reason}",
                            message=rule.message, rule_name=rule.name, e164=number, info=facts)
        if rule.strip and digits.startswith(rule.strip):
            digits = digits[len(rule.strip):]
        return Decision(action="call", trunk=rule.trunk, caller_pool=rule.caller_pool,
                        prefix=rule.prefix, strip=rule.strip if number[1:] != digits else "",
                        dial=rule.prefix + digits, reason=reason, rule_name=rule.name,
                        e164=number, info=facts)


def _matches(m: Match, country: str, region: str, city: str, carrier: str,
             types: frozenset[str]) -> bool:
    def any_of(wanted: list[str], actual: set[str]) -> bool:
        return not wanted or any(w.lower() in actual for w in wanted)

    return (any_of(m.country, {country.lower()} if country else set())
            and any_of(m.region, {region.lower()} if region else set())
            and any_of(m.city, city_parts(city))
            and any_of(m.carrier, {carrier.lower()} if carrier else set())
            and any_of(m.type, set(types)))


def default_rules_path() -> Path:
    """The rules file in force: the settings' ``regions``."""
    return load_settings().regions


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load and validate a rules file; raises YamlConfigError (file:line: field: problem)."""
    file = Path(path) if path else default_rules_path()
    parsed = load_model(RulesFile, file, check=lambda doc: repeated(
        doc, "rules", "name", lambda n, i: f"rule name {n!r} is already used by rules[{i}]"))
    return RuleSet(rules=tuple(parsed.rules), source=str(file))
