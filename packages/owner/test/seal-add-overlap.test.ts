/**
 * `sealAndPublish` adds the capsule to IPFS while capsule-core flushes it (ADR 0045): the add
 * reads the temp file and its references name the final path. It must give the very capsule
 * bytes and root CID of the old order (seal, then add the renamed file), and an add that fails
 * half-way must leave no capsule, no registration, no key record and no block a fetch of the
 * capsule could take: a real on-disk filestore and a real software sealer; the registrar and
 * the key record sink only record calls.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, readdirSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  capsuleTypedData,
  commitAndSealFile,
  generateDataKey,
  generateX25519KeyPair,
  parseCapsuleHeader,
  privateKeySigner,
  signTypedDataWith,
} from '@digicap/capsule-core'
import { softwareSealer } from '@digicap/keyguard/local'
import { importCapsule, openDataDirBlockstore, openFsCapsuleImporter } from '@digicap/p2p/import'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SealAndPublishParameters, type SealProgressFn, sealAndPublish } from '../src/index.ts'

const MiB = 1024 * 1024
const OWNER_KEY = new Uint8Array(32).fill(5)
/** Where every seal of this file registers (the killed child's too: it is given these). */
const TARGET = {
  policy: { address: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512' },
  chainId: 31337,
  registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
  keyguardPeerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
} as const satisfies Partial<SealAndPublishParameters>
const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

/** The root and the raw leaves (any order) an import of `source` gives, nothing kept. */
async function dagOf(source: Parameters<typeof importCapsule>[0]) {
  type Cid = Awaited<ReturnType<typeof importCapsule>>
  const leaves: Cid[] = []
  const root = await importCapsule(source, {
    put: (cid: Cid) => {
      if (cid.code === 0x55) leaves.push(cid)
    },
  })
  return { root, leaves }
}

/**
 * Checks that `dataDir`'s store holds no block of the capsule `path` would have been (no leaf, no
 * root: a fetch could take none of it); returns how many of its leaves have a reference written.
 */
async function referencedButAbsent(dataDir: string, path: string): Promise<number> {
  const { root, leaves } = await dagOf({ path })
  const store = await openDataDirBlockstore(dataDir)
  try {
    let referenced = 0
    for (const leaf of leaves) {
      if (await store.reference(leaf)) referenced++
      expect(await store.has(leaf)).toBe(false)
    }
    expect(await store.has(root)).toBe(false)
    return referenced
  } finally {
    await store.close()
  }
}

// Each test seals 34 MiB (twice for the first): generous on a loaded 2-core box.
const SLOW = 180_000

describe('sealAndPublish: the IPFS add runs during the capsule flush', () => {
  let dir: string
  let input: string
  let sealer: ReturnType<typeof softwareSealer>
  const signer = privateKeySigner(OWNER_KEY)
  const recovery = generateX25519KeyPair()
  const dataKey = generateDataKey()
  let wrappedKeys: Awaited<ReturnType<ReturnType<typeof softwareSealer>['wrap']>>[]

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'digicap-seal-add-'))
    input = join(dir, 'plain.bin')
    // past 32 MiB: the seal and the leaf hashing both run on capsule-core's worker lanes
    const bytes = new Uint8Array(34 * MiB + 333)
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i / 4096) & 0xff
    await writeFile(input, bytes)
    sealer = softwareSealer({
      keyFile: join(dir, 'sealer.pem'),
      allowInsecure: true,
      createIfMissing: true,
    })
    wrappedKeys = [await sealer.wrap(dataKey)]
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  function run(dataDir: string, output: string, onProgress?: SealProgressFn, file = input) {
    const registered: unknown[] = []
    const keyRecords: unknown[] = []
    // how many leaf digests the seal handed the store (a version 2 capsule of 64 bodies or more)
    const handedPieces: number[] = []
    const params: SealAndPublishParameters = {
      input: file,
      output,
      ...TARGET,
      recoveryPublicKey: recovery.publicKey,
      keys: { dataKey, wrappedKeys },
      ...(onProgress ? { onProgress } : {}),
    }
    const outcome = openFsCapsuleImporter(dataDir, { referenceFiles: true }).then(async (store) => {
      try {
        return await sealAndPublish(params, {
          signer,
          wrapper: sealer,
          registrar: {
            register: async (entry) => {
              registered.push(entry)
              return { transactionHash: '0x01' }
            },
          },
          store: {
            put: (source, options) => {
              const pieces = (source as { pieces?: readonly unknown[] }).pieces
              handedPieces.push(pieces?.length ?? 0)
              return store.put(source, options)
            },
          },
          keyRecords: { put: async (r) => keyRecords.push(r) },
        })
      } finally {
        await store.close()
      }
    })
    return { outcome, registered, keyRecords, handedPieces }
  }

  it(
    'a capsule of 64 bodies or more is added from the digests its seal hashed: the CID of its bytes',
    async () => {
      const big = join(dir, 'plain-64.bin')
      const bytes = new Uint8Array(64 * MiB + 5)
      for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i / 4096) & 0xff
      await writeFile(big, bytes)
      const dataDir = join(dir, 'ipfs-64')
      const output = join(dir, 'capsule-64.bin')
      const { outcome, handedPieces } = run(dataDir, output, undefined, big)
      const result = await outcome
      const capsule = await readFile(output)
      expect(parseCapsuleHeader(capsule).header.version).toBe(2)
      expect(handedPieces).toEqual([65])
      const dag = await dagOf({ path: output })
      expect(result.cid).toBe(dag.root.toString())
      const store = await openDataDirBlockstore(dataDir)
      try {
        for (const leaf of dag.leaves) expect((await store.reference(leaf))?.path).toBe(output)
      } finally {
        await store.close()
      }
    },
    SLOW,
  )

  it(
    'gives the capsule bytes and root CID of sealing, then adding the renamed file',
    async () => {
      const dataDir = join(dir, 'ipfs')
      const output = join(dir, 'capsule.bin')
      const { outcome, registered } = await run(dataDir, output)
      const result = await outcome
      const capsule = await readFile(output)
      expect(registered).toEqual([expect.objectContaining({ cid: result.cid })])
      expect(result.capsuleSize).toBe(capsule.length)

      // the old order, same header fields (createdAt included) and keys: seal, then add the file
      const { header } = parseCapsuleHeader(capsule)
      const before = join(dir, 'capsule-before.bin')
      await commitAndSealFile({
        owner: header.owner,
        policy: header.policy,
        keyguard: header.keyguard,
        runtime: header.runtime,
        receivers: header.receivers,
        wrappedKeys: header.wrappedKeys,
        capsuleId: header.capsuleId,
        createdAt: header.createdAt,
        formatVersion: header.version as 1 | 2,
        dataKey,
        sign: (h) => signTypedDataWith(signer, capsuleTypedData(h)),
        input,
        output: before,
      })
      expect(hash(capsule)).toBe(hash(await readFile(before)))
      const old = await dagOf({ path: before })
      expect(result.cid).toBe(old.root.toString())

      // every leaf is a reference to the final path, and reads back as the capsule's bytes
      const store = await openDataDirBlockstore(dataDir)
      try {
        expect(old.leaves.length).toBe(Math.ceil(capsule.length / MiB))
        for (const leaf of old.leaves) {
          const ref = await store.reference(leaf)
          expect(ref?.path).toBe(output)
          const parts: Uint8Array[] = []
          for await (const p of store.get(leaf)) parts.push(p)
          const at = ref?.offset as number
          expect(hash(Buffer.concat(parts))).toBe(hash(capsule.subarray(at, at + MiB)))
        }
        expect(await store.has(old.root)).toBe(true)
      } finally {
        await store.close()
      }
    },
    SLOW,
  )

  it(
    'an add that fails half-way leaves no capsule, nothing registered, no block of the capsule',
    async () => {
      const dataDir = join(dir, 'ipfs-failed')
      const output = join(dir, 'failed.bin')
      const partialCopy = join(dir, 'what-was-written.bin')
      const failure = new Error('the disk went away mid-add')
      let adding = false
      const { outcome, registered, keyRecords } = run(dataDir, output, (stage, done) => {
        if (stage !== 'add' || done < 8 * MiB || adding) return
        adding = true
        // keep what the seal wrote (the temp file) to know the CIDs the capsule would have had
        const partial = readdirSync(dir).find((f) => f.startsWith('.failed.bin.'))
        copyFileSync(join(dir, partial as string), partialCopy)
        throw failure
      })
      await expect(outcome).rejects.toMatchObject({ code: 'CAPSULE_STORE' })
      expect(adding).toBe(true)
      expect(registered).toEqual([])
      expect(keyRecords).toEqual([])
      expect(
        readdirSync(dir).filter((f) => f.startsWith('failed.bin') || f.endsWith('.partial')),
      ).toEqual([])

      // no reference at all: a file's references are one pack, written once every leaf is
      // hashed (ADR 0102; before, the first leaves' entries named a file that never came)
      expect(await referencedButAbsent(dataDir, partialCopy)).toBe(0)
    },
    SLOW,
  )

  it(
    'a seal SIGKILLed mid-add leaves nothing registered and no block a fetch could take',
    async () => {
      const dataDir = join(dir, 'ipfs-killed')
      const output = join(dir, 'killed.bin')
      const recordFile = join(dir, 'killed.log')
      const child = spawn(
        process.execPath,
        [
          fileURLToPath(new URL('./fixtures/seal-until-add.mjs', import.meta.url)),
          JSON.stringify({
            target: TARGET,
            input,
            output,
            dataDir,
            keyFile: join(dir, 'sealer.pem'),
            recordFile,
          }),
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let stderr = ''
      child.stderr.on('data', (d) => {
        stderr += d
      })
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.on('exit', (_code, signal) => resolve(signal)),
      )
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d) => {
          if (String(d).includes('adding')) resolve()
        })
        child.on('exit', (code) =>
          reject(new Error(`the seal exited (${code}) before its add: ${stderr}`)),
        )
      })
      child.kill('SIGKILL')
      expect(await exited).toBe('SIGKILL')

      // nothing registered or recorded, no capsule; the temp file stays (nobody cleaned up)
      expect(existsSync(recordFile)).toBe(false)
      expect(existsSync(output)).toBe(false)
      const partial = readdirSync(dir).find((f) => f.startsWith('.killed.bin.'))
      expect(partial).toBeDefined()
      // killed mid-add: no pack was written, so no leaf is even referenced (ADR 0102)
      expect(await referencedButAbsent(dataDir, join(dir, partial as string))).toBe(0)
    },
    SLOW,
  )
})
