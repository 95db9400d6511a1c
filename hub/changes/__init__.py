"""Subscription changes asked of the hub (pause, resume, cancel, change plan or quantity) through one
API whatever the billing provider: validated, previewed with the daily-rate method, and sent as an
action of the subscription's provider, so they are rate limited, retried, idempotent and explained
like every action (docs/changes.md)."""
