"""``python -m sfoauth_async.testing serve``: see `sfoauth_async.testing._server`."""

from ._server import main

raise SystemExit(main())
