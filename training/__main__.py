"""``python -m training`` is ``python -m training.fit``."""

from .fit import main

raise SystemExit(main())
