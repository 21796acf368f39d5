#!/usr/bin/env bash
# Builds the data-path benchmark corpus (see scripts/make_corpus.py): installs
# Pillow and the mate-backgrounds photos if missing, then runs make_corpus.py
# with the same arguments, e.g.
#   bash scripts/make_corpus.sh --out bench-data/corpus --count 1000
set -euo pipefail
python3 -c "import PIL" 2>/dev/null || pip install --quiet pillow
if [ ! -d /usr/share/backgrounds/mate/nature ]; then
    apt-get install -y --no-install-recommends mate-backgrounds >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends mate-backgrounds >/dev/null; } ||
        echo "warning: could not install mate-backgrounds; using the repository's photos only" >&2
fi
exec python3 "$(dirname "$0")/make_corpus.py" "$@"
