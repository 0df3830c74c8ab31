#!/usr/bin/env node
// The `executor-node` binary: the Node version check first (plain JavaScript, runs on any Node),
// then the real entry point, which needs Node ≥ 22.
import { requireNode } from '@digicap/cli-kit/require-node'

requireNode('executor-node', new URL('../package.json', import.meta.url))
await import('../dist/cli.js')
