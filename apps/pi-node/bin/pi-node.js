#!/usr/bin/env -S node --max-semi-space-size=2
// The `pi-node` binary: the Node version check first (plain JavaScript, runs on any Node),
// then the real entry point, which needs Node ≥ 22.
// --max-semi-space-size=2: V8's young generation stays at 2 MiB a semi-space instead of growing
// to 16: ~28 MiB less RSS for a streaming seal (scavenges run more often, each one shorter).
import { enableCompileCache } from '@digicap/cli-kit/compile-cache'
import { requireNode } from '@digicap/cli-kit/require-node'

requireNode('pi-node', new URL('../package.json', import.meta.url))
// V8's code for the modules below, kept between runs in ~/.cache/digicap (ADR 0046)
enableCompileCache('pi-node')
// the CLI and its packages as one bundle (ADR 0103): ~60 files to load where there were ~280
await import('../dist/cli-bundle.js')
