import t from 'tap'
import { hkdfSync, randomBytes as nodeRandomBytes } from 'node:crypto'
import { randomBytes } from '../src/core/ids.js'
import { hkdfSha256, sealSuccessor, unsealSuccessor } from '../src/core/sessions/refresh-token-codec.js'

t.test('hkdfSha256 derives exactly what hkdfSync derives', async (t) => {
  // Random inputs of one property: one assertion, naming the inputs that differ.
  const differ: string[] = []
  for (let i = 0; i < 50; i++) {
    const ikm = nodeRandomBytes(32)
    const salt = nodeRandomBytes(i % 3 === 0 ? 0 : 16)
    const info = `baton test ${i}`
    if (!hkdfSha256(ikm, salt, info).equals(Buffer.from(hkdfSync('sha256', ikm, salt, info, 32)))) {
      differ.push(`ikm ${ikm.toString('hex')}, salt ${salt.toString('hex') || '(empty)'}, info ${info}`)
    }
  }
  t.same(differ, [], '50 random inputs, a third with an empty salt')
})

t.test('a successor sealed under the derived key opens only with its predecessor', async (t) => {
  const secret = nodeRandomBytes(32)
  const sealed = sealSuccessor('the successor', secret, 'AAAAAAAAAAAAAAAAAAAAAA')
  t.equal(unsealSuccessor(sealed, secret, 'AAAAAAAAAAAAAAAAAAAAAA'), 'the successor')
  t.equal(unsealSuccessor(sealed, nodeRandomBytes(32), 'AAAAAAAAAAAAAAAAAAAAAA'), undefined)
  t.equal(unsealSuccessor(sealed, secret, 'BAAAAAAAAAAAAAAAAAAAAA'), undefined)
})

t.test('randomBytes: the sizes asked for, never the same bytes twice, across pool refills', async (t) => {
  const seen = new Set<string>()
  const wrongSize: string[] = []
  for (let i = 0; i < 2000; i++) {
    const bytes = randomBytes(12 + (i % 21))
    if (bytes.length !== 12 + (i % 21)) wrongSize.push(`draw ${i}: ${bytes.length} bytes for ${12 + (i % 21)}`)
    seen.add(bytes.toString('hex'))
  }
  t.same(wrongSize, [], '2,000 draws of 12 to 32 bytes: each the size asked for')
  t.equal(seen.size, 2000, 'no two alike')
  const large = randomBytes(10_000)
  t.equal(large.length, 10_000)
  t.not(large.toString('hex'), Buffer.alloc(10_000).toString('hex'))
  const held = randomBytes(32)
  const copy = Buffer.from(held)
  for (let i = 0; i < 300; i++) randomBytes(32)
  t.same(held, copy, 'bytes handed out are not changed by later draws')
})
