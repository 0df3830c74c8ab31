/** Deterministic test fixtures shared by the tests, the vector generator and the benchmark. */
import { keccak_256 } from '@noble/hashes/sha3.js'
import {
  addressFromPrivateKey,
  type CapsuleHeader,
  type CreateCapsuleHeaderParameters,
  createCapsuleHeader,
  sealCapsule,
  signCapsuleHeader,
} from '../src/index.ts'

const enc = new TextEncoder()

/** Deterministic bytes: keccak-based counter stream labelled by `label`. */
export function detBytes(label: string, length: number): Uint8Array {
  const out = new Uint8Array(length)
  const seed = keccak_256(enc.encode(label))
  for (let off = 0, i = 0; off < length; off += 32, i++) {
    const block = keccak_256(
      new Uint8Array([...seed, i & 0xff, (i >> 8) & 0xff, (i >> 16) & 0xff, (i >> 24) & 0xff]),
    )
    out.set(block.subarray(0, Math.min(32, length - off)), off)
  }
  return out
}

export const OWNER_KEY = detBytes('digicap test owner key', 32)
export const OWNER = addressFromPrivateKey(OWNER_KEY)
export const OTHER_KEY = detBytes('digicap test other key', 32)
export const DATA_KEY = detBytes('digicap test data key', 32)
export const WRONG_KEY = detBytes('digicap test wrong key', 32)
export const CAPSULE_ID = detBytes('digicap test capsule id', 32)
export const CREATED_AT = 1_790_000_000

export const BASE: Omit<CreateCapsuleHeaderParameters, 'dataKey'> = {
  owner: OWNER,
  capsuleId: CAPSULE_ID,
  createdAt: CREATED_AT,
  policy: {
    chainId: 31337,
    registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
    policy: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
  },
  keyguard: {
    peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
    keyId: 'tpm:0x81000010',
    wrapScheme: 'tpm2-rsa-oaep-sha256',
  },
  runtime: { kind: 'quickjs', entry: 'main', memoryLimit: 64 * 1024 * 1024, timeLimit: 30_000 },
  receivers: [
    {
      publicKey: detBytes('receiver 0', 32),
      peerId: '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK',
    },
  ],
  wrappedKeys: [],
}

export interface Built {
  header: CapsuleHeader
  signature: Uint8Array
  capsule: Uint8Array
  plaintext: Uint8Array
}

/** Header + signature + sealed capsule for `plaintext` with the fixed keys. */
export function build(
  plaintext: Uint8Array,
  chunkSize: number,
  overrides: Partial<CreateCapsuleHeaderParameters> = {},
  ownerKey: Uint8Array = OWNER_KEY,
): Built {
  const header = createCapsuleHeader({
    ...BASE,
    ...overrides,
    chunkSize,
    dataKey: DATA_KEY,
    plaintext,
  })
  const signature = signCapsuleHeader(header, ownerKey)
  const capsule = sealCapsule({ header, signature, dataKey: DATA_KEY, plaintext })
  return { header, signature, capsule, plaintext }
}
