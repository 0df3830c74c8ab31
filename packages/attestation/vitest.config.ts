import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    // One worker runs every file in turn (on 2 cores vitest runs one file at a time anyway), so
    // ethers, libp2p, helia and src load once per run, not once per file: half the CPU or less
    // (protocol 26 s -> 9 s, committee 102 s -> 51 s). Each file still starts and stops its
    // own anvil, swtpm and nodes. A test that vi.mock()s a module needs isolation (the module is
    // loaded already): capsule-core keeps it for its lane-worker and verified-header tests.
    isolate: false,
    // Generous: CI runs every package suite at once on 2 cores; hooks start anvil, swtpm, libp2p.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
