#!/usr/bin/env bash
# Prepare the start-up benchmark: Debian's cloud-init (the baseline) and a venv built from
# Debian's /usr/bin/python3 with a regular, non-editable install of this repository, so
# that the imports timed are the ones a device pays (an editable install adds an import
# hook). Idempotent: re-run it after changing edgeinit to reinstall the current tree.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
PY=/usr/bin/python3

need=()
dpkg -s cloud-init >/dev/null 2>&1 || need+=(cloud-init)
dpkg -s python3-venv >/dev/null 2>&1 || need+=(python3-venv)
dpkg -s time >/dev/null 2>&1 || need+=(time)  # GNU time: peak RSS (see bench_run.py)
command -v git >/dev/null 2>&1 || need+=(git)
if ((${#need[@]})); then
    echo "setup: apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "setup: $(cloud-init --version 2>&1)"

# A venv made by another interpreter (or a broken one) is replaced.
ident='import os, sys; print(os.path.realpath(sys._base_executable), sys.version)'
if [[ ! -x "$VENV/bin/python" ]] || \
   [[ "$("$VENV/bin/python" -c "$ident" 2>/dev/null)" != "$("$PY" -c "$ident")" ]]; then
    echo "setup: creating $VENV from $PY"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
fi

# Build from a copy of the work tree (tracked and untracked-but-not-ignored files) so that
# setuptools' build/ and *.egg-info land in a temp dir, not in the repository.
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z -co --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -C "$SRC" -xf -
else
    tar -C "$REPO" --exclude=.git --exclude=.venv --exclude=build --exclude='*.egg-info' \
        --exclude=__pycache__ -cf - . | tar -C "$SRC" -xf -
fi
# pyproject names README.md; an empty one keeps the build going if the tree has none.
[[ -e "$SRC/README.md" ]] || : >"$SRC/README.md"

echo "setup: pip install (regular, non-editable) of $REPO"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "$SRC"
# pip skips a same-version reinstall of a directory in some versions: force ours.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
    --force-reinstall "$SRC"

# From / so that the work tree (the current directory) cannot shadow the install.
(cd / && "$VENV/bin/python" - <<'EOF'
import importlib.util
import sys

import edgeinit

spec = importlib.util.find_spec("edgeinit")
origin = spec.origin if spec else "?"
if "site-packages" not in (origin or ""):
    sys.exit(f"setup: edgeinit imports from {origin}, not site-packages: not a regular install")
print(f"setup: edgeinit {edgeinit.__version__} from {origin}")
EOF
)
echo "setup: done; run: $VENV/bin/python $HERE/bench_run.py"
