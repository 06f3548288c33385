"""`python -m solopo ...`: the `solopo` command without relying on the console script being on PATH
(inside a rule's conda env the package is importable from the workflow's src/ but not installed)."""
import sys

from solopo.cli import main

sys.exit(main())
