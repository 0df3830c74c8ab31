import { expect, it } from 'vitest'
import * as owner from '../src/index.ts'

it('exports exactly this public surface', () => {
  expect(Object.keys(owner).sort()).toMatchInlineSnapshot(`
    [
      "CapsuleAdoptionError",
      "InputFileError",
      "RuntimeUnsupportedError",
      "adoptCapsules",
      "adoptionQueue",
      "checkSealInput",
      "ensureKeyguardOperator",
      "ethersCapsuleDirectory",
      "ethersCapsuleRegistrar",
      "ethersKeyguardRecorder",
      "gossipAnnouncer",
      "ipfsHeaderFetcher",
      "keyguardCard",
      "operatorWarning",
      "parseKeyguardCard",
      "pinCapsules",
      "publicKeyWrapper",
      "readCodeFiles",
      "readKeyguardOperator",
      "restoreKeyguard",
      "sealAndPublish",
      "solcPolicyDeployer",
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
      "InputFileError": "InputFileError INPUT_FILE",
      "RuntimeUnsupportedError": "RuntimeUnsupportedError RUNTIME_UNSUPPORTED",
    }
  `)
})
