#!/usr/bin/env node
// `pnpm demo`: the Node version check first (plain JavaScript, runs on any Node), then the
// demo, a TypeScript file run by Node's type stripping (Node ≥ 22.18).
// By path: the demo runs from this repository only, and the guard is one file.
import { requireNode } from '../../../packages/cli-kit/bin/require-node.js'

requireNode('pnpm demo', new URL('../package.json', import.meta.url))
await import('../src/demo.ts')
