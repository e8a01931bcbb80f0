"""``python -m training.job``: :func:`training.job.cli.main`."""

from .cli import main

raise SystemExit(main())
