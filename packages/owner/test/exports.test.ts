import { expect, it } from 'vitest'
import * as owner from '../src/index.ts'

it('exports exactly this public surface', () => {
  expect(Object.keys(owner).sort()).toMatchInlineSnapshot(`
    [
      "CapsuleAdoptionError",
      "DaemonRunningError",
      "InputFileError",
      "PolicyCodeError",
      "RuntimeUnsupportedError",
      "adoptCapsules",
      "adoptionQueue",
      "cachedPolicyCompiler",
      "checkSealInput",
      "childProcessPolicyCompiler",
      "ensureKeyguardOperator",
      "ethersCapsuleDirectory",
      "ethersCapsuleRegistrar",
      "ethersKeyguardRecorder",
      "ethersPolicyUpdater",
      "gossipAnnouncer",
      "ipfsHeaderFetcher",
      "keyguardCard",
      "moveCapsulePolicy",
      "operatorWarning",
      "parseKeyguardCard",
      "pinCapsules",
      "publicKeyWrapper",
      "readCodeFiles",
      "readKeyguardOperator",
      "restoreKeyguard",
      "sealAndPublish",
      "sealImageCapsule",
      "solcPolicyDeployer",
      "transactorCapsuleRegistrar",
      "transactorPolicyDeployer",
      "writeCodeBundle",
    ]
  `)
})

it('names each error class once, with its code', () => {
  const codes = Object.entries(owner)
    .filter(([k]) => k.endsWith('Error'))
    .map(([k, C]) => {
      const e = new (C as new (m: string) => { code: string; name: string })('x')
      return [k, `${e.name} ${e.code}`]
    })
  expect(Object.fromEntries(codes)).toMatchInlineSnapshot(`
    {
      "CapsuleAdoptionError": "CapsuleAdoptionError CAPSULE_ADOPTION",
      "DaemonRunningError": "DaemonRunningError DAEMON_RUNNING",
      "InputFileError": "InputFileError INPUT_FILE",
      "PolicyCodeError": "PolicyCodeError POLICY_CODE",
      "RuntimeUnsupportedError": "RuntimeUnsupportedError RUNTIME_UNSUPPORTED",
    }
  `)
})

it('@digicap/owner/node exports exactly this surface', async () => {
  const node = await import('../src/node/index.ts')
  expect(Object.keys(node).sort()).toMatchInlineSnapshot(`
    [
      "DEFAULT_LISTEN",
      "DEFAULT_TCTI",
      "OWNER_NODE_CONFIG",
      "SEAL_SOCKET_VERSION",
      "SealSocketError",
      "applyOwnerNodeEnv",
      "checkDataDir",
      "checkRelease",
      "confirmationsFor",
      "createOwnerNode",
      "createSealer",
      "defaultPolicyPcrs",
      "executorBundleEncoder",
      "finalityFor",
      "initOwnerNode",
      "initResultText",
      "installedRelease",
      "keyguardStatusText",
      "loadOwnerNodeConfig",
      "measureInstalledRelease",
      "movePolicyResultText",
      "ownerNodePaths",
      "ownerTransactions",
      "peerIdOfPublicKey",
      "pinRelease",
      "prepareDataDir",
      "provisionSealer",
      "readOwnerNodeStatus",
      "recoverOwnerNode",
      "recoverResultText",
      "recoverSealerSetup",
      "releaseKeyHex",
      "releasePcrExpectation",
      "releaseToVerify",
      "saveOwnerNodeConfig",
      "sealResultText",
      "sealViaDaemon",
      "sealerChoiceOf",
      "sealerConfigOf",
      "sealerStatusText",
      "serveSealSocket",
      "signInstalledRelease",
    ]
  `)
})

it('@digicap/owner/node/light exports the config reader, the status and its keyguard and sealer lines, as the node entry has them', async () => {
  const [light, node] = await Promise.all([
    import('../src/node/light.ts'),
    import('../src/node/index.ts'),
  ])
  expect(Object.keys(light).sort()).toMatchInlineSnapshot(`
    [
      "SEAL_SOCKET_VERSION",
      "SealSocketError",
      "applyOwnerNodeEnv",
      "keyguardStatusText",
      "loadOwnerNodeConfig",
      "ownerNodePaths",
      "readOwnerNodeStatus",
      "sealResultText",
      "sealViaDaemon",
      "sealerStatusText",
    ]
  `)
  for (const name of Object.keys(light)) {
    expect(light[name as keyof typeof light], name).toBe(node[name as keyof typeof node])
  }
})
