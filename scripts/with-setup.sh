#!/bin/sh
# Runs the set-up (pinned pnpm, frozen install, build), then `pnpm run <script>` with the pinned
# pnpm on PATH. Used by the README's two commands: `npm run conformance` and `npm test`.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh
PATH="$PWD/.tools/node_modules/.bin:$PATH"
export PATH
exec pnpm run --silent "$@"
