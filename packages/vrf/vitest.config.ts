import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    // Generous: CI runs every package suite at once on 2 cores; hooks start anvil, swtpm, libp2p.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
