"""The docs' pictures, made by the browser tests: `make screenshots` runs the tests that take
them (real Chromium, real Daphne, 5,000 rows per kind where the console is shown whole) and
copies each into docs/. A picture in the docs is never drawn by hand.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "screenshots"

# docs/<name>: the screenshot a test saves under artifacts/screenshots/.
PICTURES = {
    "live-table.png": "shift-1280x800.png",  # a desk, 5,000 rows per kind
    "live-table-dark.png": "shift-1920x1080.png",  # a wall, dark
    "live-table-phone.png": "shift-390x844.png",
    "live-table-de.png": "i18n-de-1280x800.png",
    "trend.png": "shift-1280x800-trend.png",
    "history.png": "history.png",
    "violation-detail.png": "violation-detail.png",
    "stale-state.png": "stale-state.png",
    "shelved-camera.png": "test_a_shelved_cameras_violation_notifies_nobody.png",
    "notifications.png": "notifications-desk.png",
}
TESTS = [
    "tests/test_console_for_a_shift.py",
    "tests/test_i18n.py::test_a_browser_in_german_or_spanish_gets_the_whole_console_in_it",
    "tests/test_history_browser.py",
    "tests/test_live_state.py",
    "tests/test_attention.py::test_a_shelved_cameras_violation_notifies_nobody",
    "tests/test_notifications_browser.py",
]


def main() -> int:
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", *TESTS], cwd=ROOT)
    if ran.returncode != 0:
        return ran.returncode
    for picture, shot in PICTURES.items():
        shutil.copy2(SHOTS / shot, ROOT / "docs" / picture)
        print(f"docs/{picture} <- artifacts/screenshots/{shot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
