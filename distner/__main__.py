"""`python -m distner`: the signal policy before anything else is imported (cli/main.py installs
it again for the `distner` script, whose first import is cli/main.py)."""

import sys

from distner.core import interrupts

interrupts.install()
try:
    from distner.cli.main import main
except KeyboardInterrupt:  # a stop while the command line itself loads
    print("distner: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
