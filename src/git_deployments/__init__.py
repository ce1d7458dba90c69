"""git-deployments: a deployment tracker kept in git refs."""

from __future__ import annotations

__version__ = "0.1.0"
FORMAT = "git-deployments/1"
