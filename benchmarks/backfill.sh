#!/usr/bin/env bash
# Backfill the tracked history: run benchmarks/tracked.py against earlier commits of main.
#
#   benchmarks/backfill.sh [--profile quick|full] COMMIT...
#
# Each commit is checked out in a temporary worktree (/tmp/bench-past-<sha>), its kernels
# built in place with this checkout's virtual environment (python setup.py build_ext
# --inplace: the commit's own setup.py and sources), the suite run at low priority
# (nice -n 10) with that worktree first on PYTHONPATH, the record saved in this checkout's
# benchmarks/history/, and the worktree removed.  Built extensions are kept in
# /tmp/bench-past-so/<src tree>-<setup.py blob>/ and reused by commits with the same sources
# (most commits change Python only).  The run's log is kept in /tmp/bench-past-<sha>.log.  A
# commit whose build fails is reported and skipped.  TRACKED names another copy of the
# runner (a frozen one while this checkout changes).
set -u
here="$(cd "$(dirname "$0")/.." && pwd)"
py="$here/.venv/bin/python"
tracked="${TRACKED:-$here/benchmarks/tracked.py}"
profile=quick
if [ "${1:-}" = "--profile" ]; then profile="$2"; shift 2; fi
for c in "$@"; do
    sha="$(git -C "$here" rev-parse --short=10 "$c")" || continue
    wt="/tmp/bench-past-$sha"
    log="/tmp/bench-past-$sha.log"
    key="$(git -C "$here" rev-parse "$sha:src")-$(git -C "$here" rev-parse "$sha:setup.py")"
    cache="/tmp/bench-past-so/$key"
    echo "== $sha $(git -C "$here" log -1 --format=%s "$sha" | cut -c1-70)"
    git -C "$here" worktree add --detach "$wt" "$sha" >"$log" 2>&1
    if compgen -G "$cache/*.so" >/dev/null; then
        cp "$cache"/*.so "$wt/resnet_core/"
        built=$?
        echo "   kernels reused from $cache" >>"$log"
    else
        (cd "$wt" && nice -n 10 "$py" setup.py build_ext --inplace >>"$log" 2>&1)
        built=$?
        [ $built = 0 ] && mkdir -p "$cache" && cp "$wt"/resnet_core/*.so "$cache/"
    fi
    if [ $built = 0 ]; then
        (cd /tmp && PYTHONPATH="$wt" nice -n 10 "$py" "$tracked" --profile "$profile" \
            --out "$here/benchmarks/history" 2>&1 | tee -a "$log" \
            | grep -E "^# (saved|commit)|failed|missing")
    else
        echo "   build failed (log: $log)"
    fi
    git -C "$here" worktree remove --force "$wt"
done
