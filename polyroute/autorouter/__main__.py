import sys

from polyroute.autorouter.cli import main

sys.exit(main())
