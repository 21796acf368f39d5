#!/usr/bin/env bash
# Coverage-guided fuzzing of spectradb's untrusted-input entries (see
# docs/fuzzing.md): builds the fuzz targets, then runs each one for
# SECONDS (default 600), one after another, and prints executions and
# crashes per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# FUZZ_SANITIZER=address builds with AddressSanitizer (default: none).
# Crash inputs land in fuzz/artifacts/<target>/, the grown corpus in
# fuzz/corpus/<target>/, each target's libFuzzer log in fuzz/artifacts/<target>.log.
set -euo pipefail

secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(image_file table_file statements)
sanitizer=${FUZZ_SANITIZER:-none}

cd "$(dirname "$0")/.."
# Builds every target (instrumented, release with debug assertions).
cargo +nightly fuzz build -s "$sanitizer" >&2

summary=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="fuzz/artifacts/$t.log"
    stamp=$(mktemp)
    extra=()
    [ -f "fuzz/$t.dict" ] && extra+=("-dict=fuzz/$t.dict")
    echo "== $t: ${secs}s (log: $log)" >&2
    # Fork mode keeps fuzzing after a crash, timeout or OOM (each is saved
    # as an artifact) so one run counts all it finds.
    cargo +nightly fuzz run -s "$sanitizer" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 \
        -ignore_ooms=1 -timeout=20 -rss_limit_mb=2048 "${extra[@]}" \
        >"$log" 2>&1 || true
    # Fork mode's last status line: "#EXECS: cov: .. corp: N exec/s: ..
    # oom/timeout/crash: a/b/c time: Ts ..".
    last=$(grep -E '^#[0-9]+:' "$log" | tail -n 1 || true)
    execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<<"$last")
    time=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
    fails=$(sed -nE 's/.*oom\/timeout\/crash: ([0-9]+\/[0-9]+\/[0-9]+).*/\1/p' <<<"$last")
    rate=$([ -n "$execs" ] && [ "${time:-0}" -gt 0 ] && echo $((execs / time)) || echo "?")
    new=$(find "fuzz/artifacts/$t" -type f -newer "$stamp" | wc -l)
    rm -f "$stamp"
    summary+=("$(printf '%-12s %12s %8s %8s %18s %10s' "$t" "${execs:-?}" "$rate" \
        "${corp:-?}" "${fails:-?}" "$new")")
done

printf '%-12s %12s %8s %8s %18s %10s\n' target executions exec/s corpus oom/timeout/crash artifacts
printf '%s\n' "${summary[@]}"
