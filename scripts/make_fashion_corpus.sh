#!/usr/bin/env bash
# Builds the Fashion-MNIST corpus (see scripts/make_fashion_corpus.py):
# installs Debian's dataset-fashion-mnist and Pillow when missing, e.g.
#   bash scripts/make_fashion_corpus.sh --out bench-data/fashion --split test --count 2000
set -euo pipefail
python3 -c "import PIL, numpy" 2>/dev/null || python3 -m pip install --quiet pillow numpy
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    apt-get install -y --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends dataset-fashion-mnist >/dev/null; }
fi
exec python3 "$(dirname "$0")/make_fashion_corpus.py" "$@"
