"""Shared pytest set-up. Database fixtures live in tests/dbfixtures.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

