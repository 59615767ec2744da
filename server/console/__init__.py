"""The web console: pages for jobs, sandboxes, images and classes, served by the daemon.

``routes`` serves the pages (small HTML shells, ``pages``), the session
cookie a token becomes, and the static files: ``static/`` (our CSS and
JavaScript modules, shipped with the package) and ``vendor/`` (xterm.js
and its fit and attach add-ons, installed from the npm registry by
scripts/setup.sh with `npm ci` from the lock file there; nothing is fetched
from the internet while the console runs). The pages read and act through
the same /v1 API as every client, with the caller's own token.
"""
