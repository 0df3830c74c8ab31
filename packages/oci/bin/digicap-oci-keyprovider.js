#!/usr/bin/env node
// ocicrypt's keyprovider command for `provider:digicap` (see the package README).
import { runKeyProviderCli } from '../dist/index.js'

process.exitCode = await runKeyProviderCli()
