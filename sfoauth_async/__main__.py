"""``python -m sfoauth_async``: see `sfoauth_async._cli`."""

from ._cli import main

raise SystemExit(main())
