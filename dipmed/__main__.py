from __future__ import annotations

from dipmed.cli import main

raise SystemExit(main())
