import type { ChainableCommander } from 'ioredis'
import type { RedisClient } from './client.js'
import { storage, unavailable } from './errors.js'

/** How many replicas must hold a write before its result counts (0: the master's word is enough). */
export interface Replication {
  replicas: number
  /** How long WAIT may take (ms). */
  timeoutMs: number
}

/**
 * Runs one write through {@link storage}. With `replicas` > 0, a WAIT follows
 * it on the same connection, and the result counts only once that many
 * replicas hold the write: a failover cannot then lose a token a client was
 * given. Fewer in time: 503; the write stays on the master, so a retry finds it.
 */
export async function replicatedWrite<T> (client: RedisClient, replication: Replication, write: (commander: RedisClient | ChainableCommander) => unknown): Promise<T> {
  if (replication.replicas === 0) return await storage(write(client) as Promise<T>)
  // A cluster pipeline sent before the first slot map would wait for one: fail fast instead.
  if (client.status !== 'ready') throw unavailable(new Error(`redis is ${client.status}`))
  const pipeline = client.pipeline()
  write(pipeline)
  pipeline.wait(replication.replicas, replication.timeoutMs)
  const [[error, value] = [], [waitError, acknowledged] = []] = (await storage(pipeline.exec())) ?? []
  if (error != null) await storage(Promise.reject(error))
  if (waitError != null || typeof acknowledged !== 'number' || acknowledged < replication.replicas) {
    throw unavailable(waitError ?? new Error(`the write reached ${String(acknowledged)} of ${replication.replicas} replicas in time`))
  }
  return value as T
}
