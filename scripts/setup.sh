#!/bin/sh
# Set-up shared by the README's two commands: bootstrap the pinned pnpm with npm (corepack's download
# fails its signature check on our machines), install from the lockfile, build every package.
set -eu
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
cd "$(dirname "$0")/.."
want=$(node -p "require('./package.json').packageManager.split('@')[1]")
tools="$PWD/.tools"
if [ "$("$tools/node_modules/.bin/pnpm" --version 2>/dev/null || true)" != "$want" ]; then
  echo "setup: installing pnpm $want into .tools/ with npm" >&2
  npm install --silent --no-audit --no-fund --prefix "$tools" "pnpm@$want" >&2
fi
PATH="$tools/node_modules/.bin:$PATH"
export PATH
frozen="--frozen-lockfile"
pnpm install $frozen --reporter=silent >&2
pnpm exec turbo run build --output-logs=errors-only >&2
