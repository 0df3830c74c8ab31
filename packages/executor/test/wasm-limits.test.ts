import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { clampWasmMemory, compileWasiModule } from '../src/sandbox/wasi/wasm-limits.ts'
import { wat } from './helpers.ts'

const sum = wat('sum-input.wat') // declares (memory 2), no maximum
const PAGE = 65536

async function instantiate(bytes: Uint8Array): Promise<WebAssembly.Memory> {
  const mod = await compileWasiModule(bytes)
  const stubs: Record<string, () => number> = {}
  for (const imp of WebAssembly.Module.imports(mod)) stubs[imp.name] = () => 0
  const inst = await WebAssembly.instantiate(mod, { wasi_snapshot_preview1: stubs })
  return inst.exports.memory as WebAssembly.Memory
}

describe('clampWasmMemory', () => {
  it('gives a memory without a maximum the cap as its maximum', async () => {
    const { bytes, capPages } = clampWasmMemory(sum, 5 * PAGE)
    expect(capPages).toBe(5)
    const mem = await instantiate(bytes)
    expect(mem.buffer.byteLength).toBe(2 * PAGE)
    expect(mem.grow(3)).toBe(2)
    expect(() => mem.grow(1)).toThrow(RangeError)
  })

  it('lowers a larger declared maximum and keeps a smaller one', async () => {
    const big = wat('sum-input.wat', {
      '(memory (export "memory") 2)': '(memory (export "memory") 2 1000)',
    })
    const small = wat('sum-input.wat', {
      '(memory (export "memory") 2)': '(memory (export "memory") 2 3)',
    })
    const memBig = await instantiate(clampWasmMemory(big, 4 * PAGE).bytes)
    expect(() => memBig.grow(3)).toThrow(RangeError)
    expect(memBig.grow(2)).toBe(2)
    const memSmall = await instantiate(clampWasmMemory(small, 100 * PAGE).bytes)
    expect(() => memSmall.grow(2)).toThrow(RangeError)
  })

  it('changes only the memory limits', () => {
    const { bytes } = clampWasmMemory(sum, 1 << 30)
    // limits {flags 0, min 2} became {flags 1, min 2, max 16384 (LEB128 80 80 01)}: +3 bytes
    expect(bytes.length).toBe(sum.length + 3)
    const at = Buffer.from(bytes).indexOf(Buffer.from([0x01, 0x02, 0x80, 0x80, 0x01]))
    expect(at).toBeGreaterThan(8)
    // before: … 05 <size> 01 (count) | after the limits: identical; the size grew by 3
    expect(bytes.subarray(0, at - 2)).toEqual(sum.subarray(0, at - 2))
    expect(bytes[at - 2]).toBe(sum[at - 2]! + 3)
    expect(bytes[at - 1]).toBe(sum[at - 1])
    expect(bytes.subarray(at + 5)).toEqual(sum.subarray(at + 2))
  })

  it('refuses a minimum above the cap (SANDBOX_MEMORY) and a cap below one page', () => {
    expect(() => clampWasmMemory(sum, PAGE)).toThrow(
      expect.objectContaining({ code: 'SANDBOX_MEMORY' }),
    )
    expect(() => clampWasmMemory(sum, 1000)).toThrow(
      expect.objectContaining({ code: 'SANDBOX_MEMORY' }),
    )
  })

  it('refuses shared and 64-bit memories', () => {
    const shared = wat('sum-input.wat', {
      '(memory (export "memory") 2)': '(memory (export "memory") 2 4 shared)',
    })
    expect(() => clampWasmMemory(shared, 16 * PAGE)).toThrow(
      expect.objectContaining({ code: 'SANDBOX_RUNTIME_UNSUPPORTED' }),
    )
  })

  it('fuzz: any mutation of a valid module is clamped and compiled, or refused with a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(sum.length - 1),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
        async (i, v, truncate) => {
          const m = truncate ? sum.slice(0, i) : sum.slice()
          if (!truncate) m[i] = v
          try {
            await compileWasiModule(clampWasmMemory(m, 8 * PAGE).bytes)
          } catch (e) {
            expect(['SANDBOX_RUNTIME_UNSUPPORTED', 'SANDBOX_MEMORY']).toContain(
              (e as { code: string }).code,
            )
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})
