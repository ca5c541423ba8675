#!/bin/sh
# The release: `pnpm release` publishes, `pnpm release:dry` does everything but the upload.
#
#   sh scripts/release.sh [--dry-run] [--no-test]
#
# 1. package metadata up to date (scripts/release/package-meta.ts --check);
# 2. build every package (turbo run build);
# 3. test: lint, typecheck and every package's tests (turbo) — `--no-test` leaves them out, for the
#    test command, which has just run them;
# 4. the native helpers for publishing (scripts/release/native.mjs through cni's build-shim.mjs,
#    linux's build-nl.mjs and weave's build-tap.mjs, --release: static, stripped Linux x86-64
#    executables, so this step needs Linux x86-64 and a C compiler; elsewhere cni's JavaScript shim
#    bin/cnikit-cni is the plugin, the renderer runs one `ip -batch` per new pod (or
#    buildNetlinkHelper() compiles its helper on the node) and weave's buildWeaveTap() compiles the
#    TAP helper from the shipped native/ on the node);
# 5. pack every published package (scripts/release/pack.ts) into reports/release/;
# 6. the consumer test over those very tarballs (scripts/consumer/run.ts);
# 7. publish: `changeset publish` (needs `pnpm changeset version` committed first: no pending
#    changeset, no package at 0.0.0); with --dry-run, `npm publish --dry-run` of each tarball
#    instead, which uploads nothing, and `changeset status` (what the next version would be).
#
# Every step prints its time; the first failure stops the release with its reason (exit 1).
set -eu
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
cd "$(dirname "$0")/.."

dry=0
test=1
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    --no-test) test=0 ;;
    *) echo "release: unknown option $arg (known: --dry-run, --no-test)" >&2; exit 2 ;;
  esac
done

start=$(date +%s)
step_start=$start
step() { step_start=$(date +%s); echo "release: $1 ..."; }
done_step() { echo "release: $1: ok ($(( $(date +%s) - step_start )) s)"; }
fail() { echo "release: FAILED: $1" >&2; exit 1; }

step "package metadata"
pnpm exec tsx scripts/release/package-meta.ts --check || fail "package metadata out of date"
done_step "package metadata"

if [ "$dry" = 0 ]; then
  # A real publish needs the versions `changeset version` writes.
  pending=$(find .changeset -name '*.md' ! -name README.md | wc -l)
  [ "$pending" = 0 ] || fail "$pending pending changeset(s): run pnpm changeset version, review and commit the versions and CHANGELOGs, then release"
  if grep -l '"version": "0.0.0"' packages/*/package.json conformance/package.json | xargs -r grep -L '"private": true' | grep .; then
    fail "the packages above are at 0.0.0: run pnpm changeset version first"
  fi
fi

step "build"
pnpm exec turbo run build --concurrency=2 --output-logs=errors-only || fail "build"
done_step "build"

if [ "$test" = 1 ]; then
  step "test (lint, typecheck, every package's tests)"
  pnpm exec turbo run lint typecheck test --continue --concurrency=2 --output-logs=new-only || fail "tests"
  done_step "test"
fi

step "native helpers for publishing (cni's plugin shim, the renderer's netlink helper, weave's TAP helper: static, Linux x86-64)"
node packages/cni/scripts/build-shim.mjs --release || fail "cni native shim"
node packages/linux/scripts/build-nl.mjs --release || fail "linux netlink helper"
node packages/weave/scripts/build-tap.mjs --release || fail "weave TAP helper"
done_step "native helpers"

out=reports/release
step "pack into $out"
rm -rf "$out"
pnpm exec tsx scripts/release/pack.ts "$out" || fail "pack"
done_step "pack"

step "consumer test"
pnpm exec tsx scripts/consumer/run.ts --tarballs "$out" || fail "consumer test"
done_step "consumer test"

if [ "$dry" = 1 ]; then
  step "publish (dry run: nothing is uploaded)"
  for tgz in "$out"/*.tgz; do
    npm publish "$tgz" --dry-run --access public --tag latest --loglevel=warn >"$out/publish-dry-run.log" 2>&1 || { cat "$out/publish-dry-run.log" >&2; fail "npm publish --dry-run $tgz"; }
    echo "  would publish $(basename "$tgz")"
  done
  pnpm changeset status || fail "changeset status"
  done_step "publish (dry run)"
else
  step "publish"
  pnpm changeset publish || fail "changeset publish"
  done_step "publish"
  echo "release: push the tags changeset publish made: git push --follow-tags"
fi
echo "release: done in $(( $(date +%s) - start )) s$( [ "$dry" = 1 ] && echo ' (dry run)')"
