"""Start the ferkit web app (the seed's entry point): `python main.py [--port 5000] ...`."""

import sys

from ferkit.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
