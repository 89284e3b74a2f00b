"""``python -m featvis_site ...`` runs the site CLI (same as ``featvis site ...``)."""

import sys

from featvis_site.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
