import { availableParallelism } from 'node:os'
import { hash, verify, type Algorithm, type Options } from '@node-rs/argon2'

export interface PasswordHasher {
  hash: (password: string) => Promise<string>
  verify: (passwordHash: string, password: string) => Promise<boolean>
  /** Spends the same time as a real verification, for users who do not exist. */
  verifyDummy: (password: string) => Promise<false>
}

export interface Argon2Parameters {
  memoryKiB: number
  iterations: number
  parallelism: number
  /** Hashes computed at once; further ones wait their turn. Default: one per CPU. */
  concurrency?: number
}

/**
 * Runs at most `max` tasks at a time, the rest in arrival order. libuv's
 * four threads would otherwise all hash at once: on two cores they starve
 * the event loop (a /healthz waited 350 ms behind them) and hold 19 MiB each,
 * for no more hashes per second than one per core gives.
 */
function limitConcurrency (max: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0
  const waiting: Array<() => void> = []
  return async (task) => {
    if (active < max) active++
    else await new Promise<void>((resolve) => waiting.push(resolve))
    try {
      return await task()
    } finally {
      // The slot passes straight to the next in line, or is freed.
      const next = waiting.shift()
      if (next !== undefined) next()
      else active--
    }
  }
}

// The package's Algorithm is a const enum, which isolated modules cannot read.
const ARGON2ID = 2 as Algorithm

/**
 * argon2id hashing on libuv's thread pool, so the event loop keeps serving
 * while a login hashes, at most `concurrency` at a time. The dummy hash is made once with the same parameters:
 * an unknown user costs exactly what a wrong password costs.
 */
export async function createPasswordHasher (parameters: Argon2Parameters): Promise<PasswordHasher> {
  const options: Options = {
    algorithm: ARGON2ID,
    memoryCost: parameters.memoryKiB,
    timeCost: parameters.iterations,
    parallelism: parameters.parallelism
  }
  const limited = limitConcurrency(parameters.concurrency ?? availableParallelism())
  const dummyHash = await hash('baton dummy password for unknown users', options)
  return {
    hash: async (password) => await limited(async () => await hash(password, options)),
    verify: async (passwordHash, password) => {
      try {
        return await limited(async () => await verify(passwordHash, password))
      } catch {
        return false
      }
    },
    verifyDummy: async (password) => {
      await limited(async () => await verify(dummyHash, password)).catch(() => false)
      return false
    }
  }
}
