/**
 * Signs votes through a signed-vote record file without end, for the kill -9 test (ADR 0093):
 * prints one line per vote once `sign()` resolved (acknowledged: the vote could have left), with
 * the slot's number and digest. The parent kills it with SIGKILL at some point mid-append.
 */
import { writeFileAtomic } from '@digicap/cli-kit'
import { pbftDomain } from '@digicap/committee'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { fileSignedVotes } from '../../src/node/index.ts'

const { path, signer } = JSON.parse(process.env.SIGNED_VOTES_CHILD ?? '{}') as {
  path: string
  signer: `0x${string}`
}
const domain = pbftDomain(31337n, '0x5FbDB2315678afecb367f032d93F642f64180aa3')
const record = await fileSignedVotes({ path, signer, create: true, compactBytes: 4096 })({
  writeFileAtomic,
})
for (let n = 0; ; n++) {
  const jobId = keccak_256(new TextEncoder().encode(`job-${n >> 2}`))
  const phase = (['pre-prepare', 'prepare', 'commit', 'observation'] as const)[n % 4] ?? 'commit'
  await record.sign(
    signer,
    { domain, jobId, phase, view: 0n },
    keccak_256(new TextEncoder().encode(`digest-${n}`)),
    async () => new Uint8Array(65).fill(n % 256),
  )
  process.stdout.write(`${n}\n`)
}
