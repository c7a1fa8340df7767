"""What the server's module sets up on import, that nothing else would notice missing."""

from __future__ import annotations

import importlib.util


def test_autobahn_writes_no_coloured_debug_strings_although_click_is_installed() -> None:
    # click comes with Apprise (the alerts); autobahn would colour every frame's debug
    # string with it, at a cost measured in docs/performance.md.
    assert importlib.util.find_spec("click") is not None
    from autobahn.util import hl

    import config.asgi  # noqa: F401

    assert hl("frame") == "frame"  # type: ignore[no-untyped-call]
