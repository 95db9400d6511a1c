"""Segments, loyalty tiers, derived events and sync to the marketing tools (docs/segments.md)."""
