import { defineConfig } from "vitest/config";

// In the cnikit workspace @cnikit/* resolve from their sources (the "source" condition); an
// outside project installs them from npm and needs no `resolve` here.
export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"] } },
  test: { include: ["test/**/*.test.js"], testTimeout: 120_000, hookTimeout: 120_000, pool: "forks" },
});
