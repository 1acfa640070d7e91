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
}

// The package's Algorithm is a const enum, which isolated modules cannot read.
const ARGON2ID = 2 as Algorithm

/**
 * argon2id hashing on libuv's thread pool, so the event loop keeps serving
 * while a login hashes. The dummy hash is made once with the same parameters:
 * an unknown user costs exactly what a wrong password costs.
 */
export async function createPasswordHasher (parameters: Argon2Parameters): Promise<PasswordHasher> {
  const options: Options = {
    algorithm: ARGON2ID,
    memoryCost: parameters.memoryKiB,
    timeCost: parameters.iterations,
    parallelism: parameters.parallelism
  }
  const dummyHash = await hash('baton dummy password for unknown users', options)
  return {
    hash: async (password) => await hash(password, options),
    verify: async (passwordHash, password) => {
      try {
        return await verify(passwordHash, password)
      } catch {
        return false
      }
    },
    verifyDummy: async (password) => {
      await verify(dummyHash, password).catch(() => false)
      return false
    }
  }
}
