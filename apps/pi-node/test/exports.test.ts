import { expect, it } from 'vitest'
import * as piNode from '../src/index.ts'

it('exports exactly this public surface', () => {
  expect(Object.keys(piNode).sort()).toMatchInlineSnapshot(`
    [
      "AlreadyInitialisedError",
      "ChainUnreachableError",
      "ConfigError",
      "DEFAULT_LISTEN",
      "DEFAULT_TCTI",
      "DaemonRunningError",
      "InputFileError",
      "NotInitialisedError",
      "RuntimeUnsupportedError",
      "UsageError",
      "applyEnv",
      "confirmationsFor",
      "createPiNode",
      "createSealer",
      "executorBundleEncoder",
      "fetchChainId",
      "initPiNode",
      "loadConfig",
      "peerIdOfPublicKey",
      "piNodePaths",
      "recoverPiNode",
      "resolveDataDir",
      "runCli",
      "saveConfig",
    ]
  `)
})

it('names each error class once, with its code', () => {
  const codes = Object.entries(piNode)
    .filter(([k]) => k.endsWith('Error'))
    .map(([k, C]) => [k, new (C as new (m: string) => { code: string; name: string })('x').code])
  expect(Object.fromEntries(codes)).toMatchInlineSnapshot(`
    {
      "AlreadyInitialisedError": "ALREADY_INITIALISED",
      "ChainUnreachableError": "CHAIN_UNREACHABLE",
      "ConfigError": "CONFIG",
      "DaemonRunningError": "DAEMON_RUNNING",
      "InputFileError": "INPUT_FILE",
      "NotInitialisedError": "NOT_INITIALISED",
      "RuntimeUnsupportedError": "RUNTIME_UNSUPPORTED",
      "UsageError": "USAGE",
    }
  `)
})
