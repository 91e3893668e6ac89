import sys

from ncalm.cli.main import main

sys.exit(main())
