#!/usr/bin/env bash
# Regenerates the UI screenshots in docs/ (shown in the README) from a real sweep, by running the
# browser tests that check those pages: tests/commands/test_ui_browser.py copies each page it checked here.
# Needs Chromium (apt-get install -y chromium) and optuna-dashboard (pip install -e '.[test]').
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
SWEEPS_UI_SCREENSHOTS="$PWD/docs" CI=true "$PYTHON" -m pytest -q -p no:cacheprovider tests/commands/test_ui_browser.py "$@"
ls -l docs/ui-*.png docs/optuna-dashboard.png
