#!/bin/sh
# Seeds the fuzz corpus with every YAML file of the test corpus.
# Usage (from this directory): ./seed.sh && RUSTC_BOOTSTRAP=1 cargo fuzz run parse -- -max_total_time=300
set -eu
mkdir -p corpus/parse
find ../tests/corpus -name '*.yml' -size -64k | while read -r f; do
    cp "$f" "corpus/parse/$(echo "$f" | sed 's|^\.\./tests/corpus/||; s|/|__|g')"
done
echo "seeded $(ls corpus/parse | wc -l) inputs"
