"""featvis_site: turns a featvis store into a browsable MkDocs Material gallery.

Installed from ``site/`` under the name ``featvis_site`` because ``site`` would shadow Python's own
``site`` module. Entry point: :func:`featvis_site.cli.main`; library entry point:
:func:`featvis_site.build.build_site`.
"""

__all__ = ["SiteError"]

from featvis_site.errors import SiteError
