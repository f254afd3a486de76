"""`python -m edgeinit` is the same program as the `edgeinit` script."""

from edgeinit.cli import main

raise SystemExit(main())
