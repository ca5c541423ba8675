#!/bin/sh
# The body of `npm test` after set-up: typecheck and test every package (turbo, 2 at a time), check
# the built CLI, and end with one summary line over every package's vitest report.
set -u
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
cd "$(dirname "$0")/.."
rm -f packages/*/.vitest-report.json examples/*/.vitest-report.json conformance/.vitest-report.json
status=0
pnpm exec tsc -p scripts/tsconfig.json || { echo "typecheck of scripts/ failed"; status=1; }
pnpm exec turbo run lint typecheck test --continue --concurrency=2 --output-logs=new-only || status=1
node scripts/test-summary.mjs || status=1
exit $status
