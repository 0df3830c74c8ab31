#!/usr/bin/env node
// The `pi-node` binary: the Node version check first (plain JavaScript, runs on any Node),
// then the real entry point, which needs Node ≥ 22.
import { requireNode } from '@digicap/cli-kit/require-node'

requireNode('pi-node', new URL('../package.json', import.meta.url))
await import('../dist/cli.js')
