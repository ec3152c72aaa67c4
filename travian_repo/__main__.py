"""``python -m travian_repo``: the same command line as ``travian-repo``."""

from travian_repo.apps.cli import main

raise SystemExit(main())
