import { localSigner } from '@digicap/sdk'
import { sealAndPublish } from '@digicap/sdk/seal'

const text = (s: string) => new TextEncoder().encode(s)
const program = text('digicap.output(digicap.inputText().toUpperCase())')
const capsule = await sealAndPublish({
  network: 'local',
  rpcUrl: process.env.RPC_URL,
  owner: localSigner(process.env.OWNER_KEY as `0x${string}`), // the keyguard owner's account
  keyguard: process.env.KEYGUARD_CARD, // the Pi's public card (`pi-node status --json`)
  data: text('hello capsule'),
  code: { runtime: 'quickjs', entry: 'main.js', files: { 'main.js': program } },
  policy: 'all(minReputation(1), maxRuns(2))',
  receivers: [process.env.RECEIVER as string],
  peers: [process.env.KEYGUARD_ADDR as string], // announce to the keyguard: it adopts the capsule
})
console.log(JSON.stringify({ cid: capsule.cid, addr: capsule.multiaddrs()[0] }))
process.once('SIGTERM', () => void capsule.stop()) // the capsule is served from here until then
