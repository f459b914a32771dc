"""``python -m benchmarks.advice_grid``: the grid's command line (main.py)."""

from .main import main

raise SystemExit(main())
