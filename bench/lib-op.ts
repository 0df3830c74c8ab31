/**
 * One library operation in its own process, so its time and peak RSS compare with the app's
 * process doing the same: `seal <in> <out>`, `open <in> <out>`, `add <in> <dataDir>` (blocks copied),
 * `add-ref <in> <dataDir>` (leaves kept as references to `<in>`, as `pi-node seal` adds).
 * Prints `{ ms, cpuMs }` (the operation alone, process start excluded; CPU of all its threads)
 * as its last line. `seal` writes capsule format version 2, as `pi-node seal` does (ADR 0108);
 * `BENCH_FORMAT=1` for version 1.
 */
import {
  addressFromPrivateKey,
  commitAndSealFile,
  openFile,
  signCapsuleHeader,
} from '../packages/capsule-core/dist/index.js'
import { openFsCapsuleImporter } from '../packages/p2p/dist/import.js'

// Fixed keys: this is a measurement, not a secret.
const OWNER_KEY = new Uint8Array(32).fill(7)
export const BENCH_DATA_KEY = new Uint8Array(32).fill(9)

const [op, input, output] = process.argv.slice(2) as [string, string, string]
const cpu0 = process.cpuUsage()
const t0 = performance.now()
let extra: Record<string, unknown> = {}
if (op === 'seal') {
  await commitAndSealFile({
    owner: addressFromPrivateKey(OWNER_KEY),
    policy: {
      chainId: 31337,
      registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
      policy: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
    },
    keyguard: {
      peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
      keyId: 'bench',
      wrapScheme: 'x25519-hpke',
    },
    runtime: { kind: 'data' },
    receivers: [],
    wrappedKeys: [],
    dataKey: BENCH_DATA_KEY,
    formatVersion: process.env.BENCH_FORMAT === '1' ? 1 : 2,
    sign: (header) => signCapsuleHeader(header, OWNER_KEY),
    input,
    output,
  } as never)
} else if (op === 'open') {
  await openFile({ input, output, dataKey: BENCH_DATA_KEY })
} else if (op === 'add' || op === 'add-ref') {
  const blocks = await openFsCapsuleImporter(output, { referenceFiles: op === 'add-ref' })
  extra = { cid: await blocks.put({ path: input }) }
  await blocks.close()
} else {
  throw new Error(`unknown op ${op}`)
}
const ms = performance.now() - t0
const cpu = process.cpuUsage(cpu0)
console.log(JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000, ...extra }))
