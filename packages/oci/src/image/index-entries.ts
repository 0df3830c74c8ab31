/** Writing rewritten manifests into a target layout's index.json. */
import type { ImageLayout } from '../layout/layout.ts'
import type { Descriptor } from '../layout/types.ts'
import { ANNOTATION_REF_NAME } from '../media-types.ts'

/** Adds the rewritten manifests to the target index, replacing entries with the same ref. */
export async function writeIndexEntries(
  to: ImageLayout,
  rewritten: Map<Descriptor, Descriptor>,
): Promise<void> {
  const target = await to.readIndex()
  const refOf = (d: Descriptor) => d.annotations?.[ANNOTATION_REF_NAME]
  const added = [...rewritten.values()]
  const refs = new Set(added.map(refOf).filter((r) => r !== undefined))
  target.manifests = [
    ...target.manifests.filter((m) => {
      const ref = refOf(m)
      return ref === undefined ? !added.some((a) => a.digest === m.digest) : !refs.has(ref)
    }),
    ...added,
  ]
  await to.writeIndex(target)
}
