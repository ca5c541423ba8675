#!/bin/sh
# The body of `npm test` after set-up: typecheck and test every package (turbo, 2 at a time), check
# the built CLI, run the consumer test and the release dry run, and end with one summary line over
# every package's vitest report and one for the consumer test.
set -u
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
cd "$(dirname "$0")/.."
rm -f packages/*/.vitest-report.json examples/*/.vitest-report.json conformance/.vitest-report.json
status=0
pnpm exec tsc -p scripts/tsconfig.json || { echo "typecheck of scripts/ failed"; status=1; }
pnpm exec turbo run lint typecheck test --continue --concurrency=2 --output-logs=new-only || status=1
# ESLint over scripts/ and the root config files (turbo's lint covers every package and example),
# with the lint rules' own test; then the one formatter, checked over the whole tree.
pnpm run --silent lint:root || { echo "lint of scripts/ and root files failed"; status=1; }
pnpm run --silent format:check || { echo "format:check failed: run pnpm run format"; status=1; }
# The consumer test and the release's dry run (scripts/release.sh: build, the cni shim for
# publishing, pack, the consumer test over those tarballs in a project outside the workspace,
# npm publish --dry-run); --no-test: the tests have just run above.
consumer_start=$(date +%s)
if sh scripts/release.sh --dry-run --no-test; then consumer="passed"; else consumer="FAILED (see 'release: FAILED' above)"; status=1; fi
consumer="consumer test + release dry run (packed tarballs installed with npm outside the workspace): $consumer in $(( $(date +%s) - consumer_start )) s"
node scripts/test-summary.mjs || status=1
echo "$consumer"
exit $status
