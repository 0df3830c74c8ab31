/**
 * `sealAndPublish` deploys the policy contract while the payload is sealed (ADR 0048): the
 * header takes the address only after the last chunk. The overlap must really happen, the
 * capsule must name the deployed address, and either side failing while the other runs must
 * leave no capsule, no add, no key record, no registration, and the failing side's typed error.
 * A real software sealer and a real on-disk blockstore; the deployer is a fault injector whose
 * answer the test controls (the real solc deployer on anvil runs in laptop-seal.test.ts).
 */
import { existsSync, readdirSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  generateX25519KeyPair,
  InvalidArgumentError,
  parseCapsuleHeader,
  privateKeySigner,
} from '@digicap/capsule-core'
import { DeploymentError } from '@digicap/contracts'
import { softwareSealer } from '@digicap/keyguard/local'
import { openFsCapsuleImporter } from '@digicap/p2p/import'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DeployedPolicyInfo, SealAndPublishParameters, SealStage } from '../src/index.ts'
import { sealAndPublish } from '../src/index.ts'

const MiB = 1024 * 1024
const POLICY = '0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0'
const SLOW = 120_000

/** A deployment the test settles by hand, and whether it had settled when the call did. */
function pendingDeploy() {
  let settle: { resolve: (d: DeployedPolicyInfo) => void; reject: (e: unknown) => void } = {
    resolve: () => {},
    reject: () => {},
  }
  let settled = false
  let started = false
  const deployer = {
    deploy: () => {
      started = true
      return new Promise<DeployedPolicyInfo>((resolve, reject) => {
        settle = { resolve, reject }
      }).finally(() => {
        settled = true
      })
    },
  }
  const info: DeployedPolicyInfo = {
    address: POLICY,
    transactionHash: '0x02',
    source: '// policy',
    contractName: 'Policy',
    solcVersion: '0.8.0',
    settings: {},
    metadata: {},
  }
  return {
    deployer,
    resolve: () => settle.resolve(info),
    reject: (e: unknown) => settle.reject(e),
    isSettled: () => settled,
    isStarted: () => started,
  }
}

describe('sealAndPublish: the policy deployment overlaps the seal', () => {
  let dir: string
  let input: string
  let sealer: ReturnType<typeof softwareSealer>
  const signer = privateKeySigner(new Uint8Array(32).fill(6))
  const recovery = generateX25519KeyPair()

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'digicap-seal-deploy-'))
    input = join(dir, 'plain.bin')
    await writeFile(input, new Uint8Array(6 * MiB + 17).fill(3))
    sealer = softwareSealer({
      keyFile: join(dir, 'sealer.pem'),
      allowInsecure: true,
      createIfMissing: true,
    })
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  /** One seal into `name`, with what each component saw. */
  async function run(
    name: string,
    deployer: { deploy: () => Promise<DeployedPolicyInfo> },
    overrides: Partial<SealAndPublishParameters> = {},
    onStage?: (stage: SealStage, done: number) => void,
  ) {
    const calls: string[] = []
    const output = join(dir, `${name}.capsule`)
    const store = await openFsCapsuleImporter(join(dir, `ipfs-${name}`), { referenceFiles: true })
    const outcome = sealAndPublish(
      {
        input,
        output,
        policy: 'maxRuns(3)',
        chainId: 31337,
        registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
        keyguardPeerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
        recoveryPublicKey: recovery.publicKey,
        onProgress: (stage, done) => {
          calls.push(stage)
          onStage?.(stage, done)
        },
        ...overrides,
      },
      {
        signer,
        wrapper: sealer,
        policies: deployer,
        store: {
          put: (src, o) => {
            calls.push('put')
            return store.put(src, o)
          },
        },
        keyRecords: { put: async () => calls.push('key-record') },
        registrar: {
          register: async (e) => {
            calls.push(`register ${e.policy}`)
            return { transactionHash: '0x01' }
          },
        },
      },
    ).finally(() => store.close())
    const leftovers = () => readdirSync(dir).filter((f) => f.startsWith(`.${name}.`))
    return { outcome, calls, output, leftovers }
  }

  it(
    'seals while the deployment is pending; the header and the registration name its address',
    async () => {
      const deploy = pendingDeploy()
      let sealedWhilePending = 0
      const { outcome, calls, output } = await run('overlap', deploy.deployer, {}, (stage) => {
        if (stage !== 'seal') return
        if (!deploy.isSettled()) sealedWhilePending++
        // the deployment lands only once the whole payload is sealed
        if (calls.filter((c) => c === 'seal').length === 7) deploy.resolve()
      })
      const result = await outcome
      expect(sealedWhilePending).toBeGreaterThan(1)
      expect(result.policy).toBe(POLICY)
      expect(result.deployedPolicy?.address).toBe(POLICY)
      expect(parseCapsuleHeader(await readFile(output)).header.policy.policy).toBe(POLICY)
      expect(calls.filter((c) => c === 'put' || c === 'key-record' || c.includes(' '))).toEqual([
        'put',
        'key-record',
        `register ${POLICY}`,
      ])
    },
    SLOW,
  )

  it(
    'a deployment failing mid-seal: its typed error, no capsule, no add, nothing registered',
    async () => {
      const deploy = pendingDeploy()
      const reverted = new DeploymentError('The policy deployment reverted', {
        details: { reason: 'out of gas' },
      })
      let failedAt = -1
      const { outcome, calls, output, leftovers } = await run(
        'deploy-fails',
        deploy.deployer,
        {},
        (stage, done) => {
          if (stage === 'seal' && failedAt < 0 && done >= 2 * MiB) {
            failedAt = done
            deploy.reject(reverted)
          }
        },
      )
      await expect(outcome).rejects.toBe(reverted)
      expect(failedAt).toBeGreaterThan(0)
      expect(failedAt).toBeLessThan(6 * MiB)
      expect(calls).not.toContain('put')
      expect(calls).not.toContain('key-record')
      expect(calls.some((c) => c.startsWith('register'))).toBe(false)
      expect(existsSync(output)).toBe(false)
      expect(leftovers()).toEqual([])
    },
    SLOW,
  )

  it(
    'a seal failing while the deployment is in flight: its typed error, after the deployment settles',
    async () => {
      const deploy = pendingDeploy()
      // a recovery key of the wrong length: the key wrapping of the seal refuses it
      const { outcome, calls, output, leftovers } = await run('seal-fails', deploy.deployer, {
        recoveryPublicKey: new Uint8Array(7),
      })
      let rejectedAt: boolean | undefined
      const failed = outcome.catch((e: unknown) => {
        rejectedAt = deploy.isSettled()
        return e
      })
      // the call has not given up while the deployment is still sending
      await new Promise((r) => setTimeout(r, 200))
      expect(deploy.isStarted()).toBe(true)
      expect(rejectedAt).toBeUndefined()
      deploy.resolve()
      const err = await failed
      expect(rejectedAt).toBe(true)
      expect(err).toBeInstanceOf(InvalidArgumentError)
      expect(calls).not.toContain('put')
      expect(calls.some((c) => c.startsWith('register') || c === 'key-record')).toBe(false)
      expect(existsSync(output)).toBe(false)
      expect(leftovers()).toEqual([])
    },
    SLOW,
  )

  it(
    'a header field capsule-core refuses while the deployment is in flight: the same',
    async () => {
      const deploy = pendingDeploy()
      const { outcome, calls, output, leftovers } = await run('header-fails', deploy.deployer, {
        runtime: { kind: 'data', timeLimit: -5 },
      })
      setTimeout(() => deploy.reject(new Error('never deployed')), 100)
      await expect(outcome).rejects.toBeInstanceOf(InvalidArgumentError)
      expect(deploy.isSettled()).toBe(true)
      expect(calls).not.toContain('put')
      expect(calls.some((c) => c.startsWith('register') || c === 'key-record')).toBe(false)
      expect(existsSync(output)).toBe(false)
      expect(leftovers()).toEqual([])
    },
    SLOW,
  )
})
