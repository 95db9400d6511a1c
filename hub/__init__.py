"""The subscriber hub: webhooks in, canonical events, rules, actions out."""

__version__ = "0.1.0"
