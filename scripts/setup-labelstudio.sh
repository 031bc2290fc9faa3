#!/usr/bin/env bash
# Install Label Studio into its own virtual environment, for the integration tests that run a
# real Label Studio against labelloop's ML backend (`pytest -m labelstudio`).
#
# Label Studio is not a dependency of labelloop: it pins many packages of its own (Django and
# friends, about 1 GB), so it lives in `.venv-labelstudio/` next to the sources, where the tests
# look for it (override with LABELLOOP_LABELSTUDIO_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LABELLOOP_LABELSTUDIO_VENV:-.venv-labelstudio}"
VERSION="${LABEL_STUDIO_VERSION:-}"   # empty: the newest release on PyPI
PYTHON="${PYTHON:-python3}"

if [ -x "$VENV/bin/label-studio" ] && [ "${1:-}" != "--force" ]; then
  echo "Label Studio already installed in $VENV ($("$VENV/bin/python" -m pip show label-studio 2>/dev/null | sed -n 's/^Version: //p'))" >&2
  exit 0
fi

echo "installing Label Studio${VERSION:+ $VERSION} into $VENV (about 1 GB, a minute)" >&2
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
"$VENV/bin/python" -m pip install --disable-pip-version-check -q "label-studio${VERSION:+==$VERSION}"
"$VENV/bin/python" -c "import label_studio"  # (`label-studio --version` starts Django: slow)
echo "Label Studio installed: $VENV/bin/label-studio" >&2
