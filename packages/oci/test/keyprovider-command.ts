// The keyprovider command from the sources, for tests (the published bin runs dist/).
import { runKeyProviderCli } from '../src/keyprovider/cli.ts'

process.exitCode = await runKeyProviderCli()
