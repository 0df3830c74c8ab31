import { localSigner } from '@digicap/sdk'
import { registerExecutor, runCapsule } from '@digicap/sdk/run'

const executor = {
  signer: localSigner(process.env.EXECUTOR_KEY as `0x${string}`),
  identity: Buffer.from(process.env.EXECUTOR_IDENTITY as string, 'hex'), // libp2p id seed
}
const local = { network: 'local', rpcUrl: process.env.RPC_URL }
const peers = (process.env.PEERS as string).split(',') // keyguard, capsule server, receiver
const cid = process.env.CID as string
await registerExecutor({ ...local, ...executor, stake: 10n ** 16n }) // once: 0.01 ETH stake
for (const path of ['fast', 'chain'] as const) {
  const run = await runCapsule({ ...local, ...executor, cid, path, peers })
  const output = new TextDecoder().decode(run.output)
  console.log(JSON.stringify({ path: run.path, runId: run.runId, output }))
}
