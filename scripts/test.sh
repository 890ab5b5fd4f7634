#!/usr/bin/env bash
# The whole test suite, as the README and .ci/run run it. Extra arguments go to the test runner
# as a filter, e.g. `scripts/test.sh config`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup-debian.sh
if [[ -f $HOME/.cargo/env ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

# Every step runs even after a failure, so one run reports all that is wrong.
failed=()
step() {
    echo "==> $*"
    if ! "$@"; then
        failed+=("$*")
    fi
}

step cargo fmt --all --check
step cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doctests; run them first so the suite's summary is the last word.
    step cargo test --workspace --doc "$@"
    step cargo nextest run --workspace --no-fail-fast "$@"
else
    echo "cargo-nextest not installed; using cargo test"
    step cargo test --workspace --no-fail-fast "$@"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "all checks passed"
