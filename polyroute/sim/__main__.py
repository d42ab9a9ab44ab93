import sys

from polyroute.sim.cli import main

sys.exit(main())
