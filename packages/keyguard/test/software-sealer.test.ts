import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Logger, SealerRefusedError, softwareSealer } from '../src/index.ts'
import { expectCode, sealerComplianceSuite } from './compliance.ts'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kg-soft-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function capture(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  return { warnings, info: () => undefined, warn: (m) => warnings.push(m) }
}

sealerComplianceSuite('software', async () => ({
  sealer: softwareSealer({
    keyFile: join(dir, 'a', 'sealer.pem'),
    allowInsecure: true,
    createIfMissing: true,
    logger: capture(),
  }),
  other: softwareSealer({
    keyFile: join(dir, 'b', 'sealer.pem'),
    allowInsecure: true,
    createIfMissing: true,
    logger: capture(),
  }),
}))

describe('software sealer', () => {
  it('is refused unless allowInsecure is true', () => {
    for (const allowInsecure of [false, undefined, 'yes', 1]) {
      const init = { keyFile: join(dir, 'x.pem'), allowInsecure } as unknown as Parameters<
        typeof softwareSealer
      >[0]
      try {
        softwareSealer(init)
        expect.unreachable('softwareSealer must throw')
      } catch (err) {
        expect(err).toBeInstanceOf(SealerRefusedError)
        expect((err as SealerRefusedError).code).toBe('SEALER_REFUSED')
        expect((err as SealerRefusedError).details.reason).toBe('not-allowed')
      }
    }
  })

  it('warns loudly in the log and in describe()', async () => {
    const logger = capture()
    const sealer = softwareSealer({
      keyFile: join(dir, 'warn', 'k.pem'),
      allowInsecure: true,
      createIfMissing: true,
      logger,
    })
    expect(logger.warnings[0]).toMatch(/^INSECURE/)
    const d = await sealer.describe()
    expect(d).toMatchObject({ kind: 'software', hardwareBacked: false })
    expect(d.warning).toMatch(/^INSECURE/)
  })

  it('creates the key file with mode 0600 in a 0700 directory, once', async () => {
    const keyFile = join(dir, 'mode', 'k.pem')
    const a = softwareSealer({
      keyFile,
      allowInsecure: true,
      createIfMissing: true,
      logger: capture(),
    })
    const b = softwareSealer({
      keyFile,
      allowInsecure: true,
      createIfMissing: true,
      logger: capture(),
    })
    const [ka, kb] = await Promise.all([a.publicKey(), b.publicKey()])
    expect(ka.keyId).toBe(kb.keyId)
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
    expect((await stat(join(dir, 'mode'))).mode & 0o777).toBe(0o700)
  })

  it('refuses a key file readable by group or others', async () => {
    const keyFile = join(dir, 'perm', 'k.pem')
    const sealer = softwareSealer({
      keyFile,
      allowInsecure: true,
      createIfMissing: true,
      logger: capture(),
    })
    const key = randomBytes(32)
    const wrapped = await sealer.wrap(key)
    await chmod(keyFile, 0o644)
    const reopened = softwareSealer({ keyFile, allowInsecure: true, logger: capture() })
    const err = await expectCode(reopened.unwrap(wrapped), 'SEALER_REFUSED')
    expect(err.details.reason).toBe('key-file-permissions')
    await chmod(keyFile, 0o600)
    expect(await reopened.unwrap(wrapped)).toEqual(new Uint8Array(key))
  })

  it('refuses a missing key file unless told to create it', async () => {
    const sealer = softwareSealer({
      keyFile: join(dir, 'none.pem'),
      allowInsecure: true,
      logger: capture(),
    })
    expect((await expectCode(sealer.publicKey(), 'SEALER_REFUSED')).details.reason).toBe(
      'key-file-missing',
    )
  })

  it('refuses a directory, garbage, a public key and a non-RSA key as key file', async () => {
    const cases: [string, string | null][] = [
      ['garbage.pem', 'not a key'],
      [
        'public.pem',
        generateKeyPairSync('rsa', { modulusLength: 2048 })
          .publicKey.export({ type: 'spki', format: 'pem' })
          .toString(),
      ],
      [
        'ec.pem',
        generateKeyPairSync('ec', { namedCurve: 'P-256' })
          .privateKey.export({ type: 'pkcs8', format: 'pem' })
          .toString(),
      ],
      [
        'rsa1024.pem',
        generateKeyPairSync('rsa', { modulusLength: 1024 })
          .privateKey.export({ type: 'pkcs8', format: 'pem' })
          .toString(),
      ],
      ['adir', null],
    ]
    for (const [name, content] of cases) {
      const keyFile = join(dir, 'bad', name)
      await mkdir(join(dir, 'bad'), { recursive: true, mode: 0o700 })
      if (content === null) await mkdir(keyFile, { mode: 0o700 })
      else await writeFile(keyFile, content, { mode: 0o600 })
      const sealer = softwareSealer({ keyFile, allowInsecure: true, logger: capture() })
      const err = await expectCode(sealer.publicKey(), 'SEALER_REFUSED')
      expect(err.details.reason, name).toBe(content === null ? 'key-file-type' : 'key-file-invalid')
    }
  })
})
