"""The vendored htmx and its SSE extension are the versions static/vendor/README.md
documents."""

from __future__ import annotations

import hashlib
import re

from tests.helpers import ROOT

STATIC = ROOT / "static"


def test_vendored_htmx_is_the_documented_version() -> None:
    readme = (STATIC / "vendor" / "README.md").read_text()
    htmx = (STATIC / "vendor" / "htmx-2.0.11" / "htmx.min.js").read_text()
    assert 'version:"2.0.11"' in htmx and "htmx.org 2.0.11" in readme
    sse = (STATIC / "vendor" / "htmx-ext-sse-2.2.4" / "sse.js").read_bytes()
    documented = re.search(r"htmx-ext-sse 2\.2\.4 .*sha256 ([0-9a-f]{64})", readme)
    assert documented is not None
    assert hashlib.sha256(sse).hexdigest() == documented.group(1)
    for folder in ["htmx-2.0.11", "htmx-ext-sse-2.2.4"]:
        assert (STATIC / "vendor" / folder / "LICENSE").exists()


def test_vendored_swagger_ui_is_the_documented_version() -> None:
    from realtime.api.api import SWAGGER_UI

    readme = (STATIC / "vendor" / "README.md").read_text()
    folder = STATIC / SWAGGER_UI
    assert folder.name == "swagger-ui-5.35.0" and "swagger-ui-dist 5.35.0" in readme
    for name in ["swagger-ui-bundle.js", "swagger-ui.css"]:
        documented = re.search(rf"`{re.escape(name)}` sha256 ([0-9a-f]{{64}})", readme)
        assert documented is not None, name
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == documented.group(1)
    assert (folder / "LICENSE").exists()
