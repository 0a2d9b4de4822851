"""``python -m rafale.cluster.cli``: the ``rafale`` command."""

from rafale.cluster.cli.main import main

raise SystemExit(main())
