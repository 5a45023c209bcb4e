"""Build and launch the DetectLab app on 127.0.0.1 (``python app.py [--host H] [--port P]``)."""

import sys

from detectlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
