/**
 * The executor's open → run → clean-up of one capsule in its own process, as `runCapsule` does
 * it after the key release (ADR 0035: the payload streamed to a tmpfs file, the stock data
 * sandbox, the workspace wiping the file): `executor-op.ts <capsule> <data-key-hex>`. Prints
 * `{ ms, cpuMs, mainCpuMs, openMs, runMs, cleanupMs, to }` as its last line (the operations
 * alone, process start excluded; `cpuMs` all threads, `mainCpuMs` the open's thread, the
 * critical path on an idle machine), to compare with `lib-op.ts open` (capsule-core's
 * `openFile`) on the same file. The header is checked first, untimed, as the loader checks it
 * while fetching, and the open takes the loader's proof; `--header-checked-twice` opens
 * without it, as the run path did before (the open checked the signature again).
 * `headerChecks` counts the signature checks the open made; `loaderCheckMs` is the loader's.
 */
import { subscribe } from 'node:diagnostics_channel'
import { closeSync, openSync, readSync } from 'node:fs'
import {
  HEADER_SIGNATURE_CHANNEL,
  parseCapsuleHeader,
  verifiedCapsuleHeader,
  warmFileLanes,
} from '../packages/capsule-core/dist/index.js'
// The run entry: what open and run need, none of the node's libp2p, helia or ethers.
import {
  createRunWorkspace,
  defaultSandboxes,
  openJob,
  plaintextRootOf,
  resolveRuntime,
  runInSandbox,
} from '../packages/executor/dist/run.js'

const [capsule, keyHex, mode] = process.argv.slice(2) as [string, string, string | undefined]
const checkedTwice = mode === '--header-checked-twice'
const head = new Uint8Array(1024 * 1024)
const fd = openSync(capsule, 'r')
const got = readSync(fd, head, 0, head.byteLength, 0)
closeSync(fd)
const parsed = parseCapsuleHeader(head.subarray(0, got))
const runtime = resolveRuntime(parsed.header.runtime)
const sandbox = defaultSandboxes()[runtime.kind as 'data']
const workspace = createRunWorkspace()
// the loader's check, part of the fetch on the run path (the process's first: cold)
const c0 = performance.now()
const verified = verifiedCapsuleHeader(parsed)
const loaderCheckMs = performance.now() - c0
// As `runCapsule` does once the header is known: the open's lanes boot while the key is granted
// and released (ADR 0104). Here the open follows at once, so they have less time than there.
warmFileLanes({ size: parsed.header.payload.plaintextSize })
let headerChecks = 0
subscribe(HEADER_SIGNATURE_CHANNEL, () => headerChecks++)
const cpu0 = process.cpuUsage()
const main0 = process.threadCpuUsage()
const t0 = performance.now()
const job = await openJob({
  loaded: { path: capsule, parsed, runtime, ...(checkedTwice ? {} : { verified }) } as never,
  sandbox,
  dataKey: new Uint8Array(Buffer.from(keyHex, 'hex')),
  workspace,
  plaintextRoot: await plaintextRootOf({}),
})
const t1 = performance.now()
const openHeaderChecks = headerChecks
const ran = await runInSandbox({ sandbox, job, workspace })
const t2 = performance.now()
const cpu = process.cpuUsage(cpu0)
const main = process.threadCpuUsage(main0)
const cleanupMs = t2 - t1 - ran.result.stats.wallMs
console.log(
  JSON.stringify({
    ms: t2 - t0,
    cpuMs: (cpu.user + cpu.system) / 1000,
    mainCpuMs: (main.user + main.system) / 1000,
    openMs: t1 - t0,
    runMs: ran.result.stats.wallMs,
    cleanupMs,
    to: job.inputFile ? 'tmpfs-file' : 'memory',
    fileBytesOverwritten: ran.cleanup.fileBytesOverwritten,
    headerChecks: openHeaderChecks,
    loaderCheckMs,
  }),
)
