import sys

from gdtui.cli import main

sys.exit(main())
