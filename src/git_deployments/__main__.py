from __future__ import annotations

from git_deployments.cli import main

raise SystemExit(main())
