"""ivr.regions: region dialing exceptions from what phonenumbers knows about the callee.

    rules = load_rules(settings.regions)  # the rules ivr.yaml names (file:line: field)
    d = rules.decide("+8613999123456")  # Decision(action="message", reason=..., message=...)
    ok, why = guard_allows("8613999123456")   # the dialplan guard's question (fails closed)
"""

from ivr.regions.guard import decide, default_rules, guard_allows
from ivr.regions.rules import (
    Decision,
    Match,
    MessageTemplateError,
    Rule,
    RuleSet,
    default_rules_path,
    load_rules,
)

__all__ = ["Decision", "Match", "MessageTemplateError", "Rule", "RuleSet", "decide",
           "default_rules", "default_rules_path", "guard_allows", "load_rules"]
