import { generateReceiverKey, openReceiver } from '@digicap/sdk'

const key = generateReceiverKey() // keep key.privateKey: results are sealed to it
const receiver = await openReceiver({
  network: 'local',
  rpcUrl: process.env.RPC_URL,
  key: key.privateKey,
})
console.log(JSON.stringify({ receiver: receiver.id, addr: receiver.multiaddrs()[0] }))
process.once('SIGTERM', () => void receiver.stop())
for await (const result of receiver.results()) {
  const output = new TextDecoder().decode(result.output)
  console.log(JSON.stringify({ runId: result.runId, executor: result.executor, output }))
}
