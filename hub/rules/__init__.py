"""The rule engine: YAML rules -> planned actions (see rules/README.md for the language)."""

from .facts import Facts, NoFacts, StoreFacts
from .loader import load_rules
from .model import PlannedAction, Rule, RuleSet, parse_duration
from .planner import Cancellation, plan
from .registry import RulesRegistry
from .yamlpos import LocatedError

__all__ = ["Cancellation", "Facts", "LocatedError", "NoFacts", "PlannedAction", "Rule", "RuleSet", "RulesRegistry",
           "StoreFacts", "load_rules", "parse_duration", "plan"]
