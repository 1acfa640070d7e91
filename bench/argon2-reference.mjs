// The login reference: how many argon2id verifications per second this
// machine does with @node-rs/argon2 and the auth-service's parameters,
// keeping as many in flight as the login scenario has connections, on the
// same libuv thread pool a service gets. Talks to its parent over IPC.
import { hash, verify } from '@node-rs/argon2'

process.once('message', async ({ durationMs, concurrency, memoryKiB, iterations, parallelism }) => {
  const options = { algorithm: 2, memoryCost: memoryKiB, timeCost: iterations, parallelism }
  const password = 'bench password, long enough'
  const passwordHash = await hash(password, options)
  let done = 0
  const end = Date.now() + durationMs
  const start = Date.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < end) {
      if (!await verify(passwordHash, password)) throw new Error('verification failed')
      done++
    }
  }))
  const seconds = (Date.now() - start) / 1000
  process.send({ rate: done / seconds, done, seconds, rss: process.memoryUsage().rss })
  process.disconnect()
})
