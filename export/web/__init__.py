"""The zoo's web page: try every served model in a browser (``python -m export.serve``, at ``/``).

Plain HTML, JavaScript and CSS in ``static/``, no build step and nothing fetched from the
internet. The page calls only TF Serving's public REST API (``/v1/models/NAME/metadata`` and
``:predict``) and picks the controls each model's signatures call for, so the same page works
against real TF Serving behind a proxy (``index.html?api=http://host:8501&models=a,b``). The
zoo's server adds two read-only helpers TF Serving does not have: ``/web/models.json`` (the
served models with their model cards) and the static files.
"""

from __future__ import annotations

import json
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}
ROUTES = {"/": "index.html", "/index.html": "index.html", "/web/app.js": "app.js",
          "/web/style.css": "style.css"}
MODELS_PATH = "/web/models.json"


class WebPage:
    """GET requests for the page -> ``(status, content type, body)``; other paths -> None.

    ``catalogue()`` returns ``{model name: its directory}`` for the models being served; a
    ``MODEL_CARD.md`` in that directory is sent along with the name.
    """

    def __init__(self, catalogue):
        self.catalogue = catalogue

    def handle(self, path: str):
        if path in ROUTES:
            file = STATIC_DIR / ROUTES[path]
            return 200, CONTENT_TYPES[file.suffix], file.read_bytes()
        if path == MODELS_PATH:
            models = [{"name": name, "card": _card(directory)}
                      for name, directory in sorted(self.catalogue().items())]
            return 200, "application/json", json.dumps({"models": models}).encode()
        return None


def _card(directory) -> str | None:
    path = Path(directory) / "MODEL_CARD.md"
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
