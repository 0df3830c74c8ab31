/** `executor-node registry <capsule-cid> <image-cid>`: an image capsule's registry endpoint on 127.0.0.1. */
import { positiveInteger, valueFlag } from '@digicap/cli-kit'
import { command, dataDirOf, listenOf } from './shared.ts'

export const registry = command({
  name: 'registry',
  summary: "serve an image capsule's encrypted image to local container tools (/v2 on 127.0.0.1)",
  usage: '<capsule-cid> <image-cid> [--port <n>]',
  description: `Serves the image capsule's encrypted image read-only on 127.0.0.1 for skopeo or podman,
from this node's IPFS store (bitswap from any peer holding the blobs; each checked against its
digest). The header is verified on chain; the one tag, "capsule", is its committed manifest
digest. <image-cid>: the map \`pi-node seal-image\` prints. Stops on SIGINT/SIGTERM.`,
  args: [
    { name: 'capsule-cid', help: "the image capsule's CID" },
    { name: 'image-cid', help: "the CID of the capsule's image map" },
  ],
  flags: {
    port: valueFlag('<n>', 'TCP port on 127.0.0.1 (default: any free port)', {
      parse: positiveInteger,
    }),
  },
  async run(ctx) {
    const { flags, args, event: line } = ctx
    const [{ createExecutorNode }, { serveImageRegistry }] = await Promise.all([
      import('../executor-node.ts'),
      import('@digicap/executor/node'),
    ])
    const en = await createExecutorNode(dataDirOf(ctx), ctx.env, {
      ...listenOf(ctx),
      executor: false,
      attestation: false,
    })
    try {
      for (const a of en.config.keyguardAddrs) {
        const { multiaddr } = await import('@multiformats/multiaddr')
        await en.node.libp2p
          .dial(multiaddr(a), { signal: AbortSignal.timeout(5000) })
          .catch(() => {})
      }
      const reg = await serveImageRegistry(en, {
        cid: args['capsule-cid'],
        image: args['image-cid'],
        ...(flags.port !== undefined ? { port: flags.port } : {}),
      })
      line(
        {
          event: 'serving',
          url: reg.url,
          reference: reg.reference,
          manifestDigest: reg.manifestDigest,
        },
        `serving ${reg.manifestDigest}\n  docker://${reg.reference}\n`,
      )
      await ctx.waitForStop()
      await reg.close()
    } finally {
      await en.stop()
    }
  },
})
