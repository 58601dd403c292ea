#!/usr/bin/env bash
# The dashboard in a real browser: playwright (from PyPI, in a venv)
# driving Debian's Chromium against a real daemon (tests/browser/dashboard.py).
#
#   bash scripts/browser.sh [path/to/jobq] [--screenshots DIR]
#
# Needs /usr/bin/chromium (.ci/run installs Debian's chromium package). The
# screenshots in docs/screenshots/ come from `--screenshots docs/screenshots`.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(realpath "${1:-target/debug/jobq}")
shift || true
version=1.65.2
venv=${JOBQ_BROWSER_VENV:-target/browser-venv}
chromium=${JOBQ_CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$chromium" ]; then
    echo "browser: $chromium is missing: install Debian's chromium package (apt-get install chromium)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show playwright 2>/dev/null | grep -q "^Version: $version$"; then
    echo "browser: installing playwright $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "playwright==$version"
fi
exec "$venv/bin/python" tests/browser/dashboard.py "$bin" --chromium "$chromium" "$@"
