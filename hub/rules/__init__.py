"""The rule engine: YAML rules -> planned actions (see rules/README.md for the language)."""

from hub.rules.facts import Facts, NoFacts, StoreFacts
from hub.rules.loader import load_rules
from hub.rules.model import PlannedAction, Rule, RuleSet, parse_duration
from hub.rules.planner import Cancellation, plan
from hub.rules.registry import RulesRegistry
from hub.rules.yamlpos import LocatedError

__all__ = ["Cancellation", "Facts", "LocatedError", "NoFacts", "PlannedAction", "Rule", "RuleSet", "RulesRegistry",
           "StoreFacts", "load_rules", "parse_duration", "plan"]
