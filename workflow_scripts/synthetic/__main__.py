"""``python -m workflow_scripts.synthetic``: same as the ``imsms-synthetic`` command."""

from .cli import main

raise SystemExit(main())
