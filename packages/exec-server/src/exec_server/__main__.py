import sys

from .cli_run import main

sys.exit(main())
