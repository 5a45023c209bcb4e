"""The Attack tab (placeholder until the capability lands)."""

from __future__ import annotations

from detectlab.ui.common import coming


def build() -> dict:
    """Build the tab inside the current gr.Tab; returns its components by name."""
    coming("Attack", "Not built yet.")
    return {}
