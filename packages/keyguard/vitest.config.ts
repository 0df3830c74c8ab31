import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    // One worker runs every file in turn (as in executor, committee, p2p...): ethers, libp2p and
    // src load once per run, not once per file (806 s -> 402 s on the shared box at load 8-13).
    // Each file still starts and stops its own anvil, swtpm and nodes; no file vi.mock()s.
    isolate: false,
    // Generous: CI runs every package suite at once on 2 cores; hooks start anvil, swtpm, libp2p.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
